"""The HTTP ceiling: a BentoML service that takes `POST /predict`'s body and does nothing with it.

`python -m benchmark` serves it (`bentoml serve benchmark.noop_service:Noop`) and
loads it like the real service's cached path, so the report shows how close the
cached path gets to what BentoML's HTTP stack itself answers on this machine.
`Noop` is BentoML as it comes (the targets' H_32 and H_1); `NoopUntraced` runs it as
the service does with tracing off (no OpenTelemetry span per request, sentiment/tracing.py),
so the report can say how the service compares with that too.
"""

from __future__ import annotations

from typing import Any

import bentoml

from sentiment.tracing import EVERY_URL


def noop_service(name: str, **config: Any) -> Any:  # noqa: ANN401 - a BentoML service
    @bentoml.service(name=name, **config)
    class Noop:
        @bentoml.api(route="/predict")
        async def predict(self, text: list[str]) -> dict[str, list]:
            return {"predictions": [[] for _ in text]}

    return Noop


Noop = noop_service("noop")
NoopUntraced = noop_service("noop_untraced", tracing={"excluded_urls": EVERY_URL})
