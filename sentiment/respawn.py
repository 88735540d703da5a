"""A model worker that dies comes back, in the container as on a laptop.

BentoML's supervisor (circus) respawns a dead worker, except where BENTOML_CONTAINERIZED
(or BENTOCLOUD_DEPLOYMENT_URL) is set: `create_watcher` in `bentoml/serving.py` passes
`respawn=not running_inside_container()`, leaving restarts to the orchestrator. Both
services share one container here, so a dead model worker left the public worker
running, `/livez` 200 and `/readyz` 503: the kubelet never restarted the pod and it
stayed NotReady for good. BentoML's image sets BENTOML_CONTAINERIZED=true, and in
BentoML 1.4.39 that variable decides nothing but respawning, so `bentoml serve` drops
it when it loads this service, before it creates its watchers. (No upstream issue or
setting covers it.)

`check_respawn` is the tripwire, run by the model service at start-up: it fails when
BentoML decides respawning some other way, or when the variable is still in force.
"""

from __future__ import annotations

import inspect
import os

CONTAINERIZED = "BENTOML_CONTAINERIZED"


def respawn_dead_workers() -> None:
    """Let BentoML's supervisor respawn the workers it starts from now on (this process and its children)."""
    from bentoml import serving

    os.environ.pop(CONTAINERIZED, None)
    serving.running_inside_container.cache_clear()


def check_respawn() -> None:
    from bentoml import serving

    if "respawn=not running_inside_container()" not in inspect.getsource(serving.create_watcher):
        raise RuntimeError("BentoML no longer decides respawning with running_inside_container(): "
                           "revisit sentiment/respawn.py for this BentoML version")
    if serving.running_inside_container() and "BENTOCLOUD_DEPLOYMENT_URL" not in os.environ:
        raise RuntimeError(f"{CONTAINERIZED} is still set: a dead model worker would not be respawned (sentiment/respawn.py)")
