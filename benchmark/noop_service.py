"""The HTTP ceiling: a BentoML service that takes `POST /predict`'s body and does nothing with it.

`python -m benchmark` serves it (`bentoml serve benchmark.noop_service:Noop`) and
loads it like the real service's cached path, so the report shows how close the
cached path gets to what BentoML's HTTP stack itself answers on this machine.
"""

from __future__ import annotations

import bentoml


@bentoml.service(name="noop")
class Noop:
    @bentoml.api(route="/predict")
    async def predict(self, text: list[str]) -> dict[str, list]:
        return {"predictions": [[] for _ in text]}
