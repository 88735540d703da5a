"""Locust versions of the k6 scenarios, for people who prefer Locust.

Course scenario (10 users, 95% of requests repeat one cached payload):
    locust -f locustfile.py --headless -u 10 -r 1 --run-time 2m --host http://127.0.0.1:3000 CourseUser
Saturation (unique sentences, every request reaches the model; raise -u to find the ceiling):
    locust -f locustfile.py --headless -u 32 -r 4 --run-time 1m --host http://127.0.0.1:3000 SaturationUser
`--run-time` bounds every run; add `--csv report` for CSV statistics. CACHE_RATE and TEXTS
env vars mirror k6/load.js and k6/saturation.js.
"""

from __future__ import annotations

import os
import random
import uuid

from locust import HttpUser, between, task

CACHE_RATE = float(os.environ.get("CACHE_RATE", "0.95"))
TEXTS = int(os.environ.get("TEXTS", "10"))

CACHED = ["I love you!", "I hate you!", "I am a Kubernetes Cluster!"]
VARIED = [
    "The film was a delight from start to finish.",
    "I would not watch this again if you paid me.",
    "A clever script let down by wooden acting.",
    "Quietly moving, with a remarkable lead performance.",
    "The plot makes no sense and the jokes fall flat.",
    "Easily the best thing I have seen this year.",
    "It is long, loud and utterly forgettable.",
    "Warm, funny and surprisingly wise.",
    "The second half drags, but the ending lands.",
    "An ugly, cynical mess of a movie.",
]
WORDS = (
    "the a film movie story plot acting cast ending music was is felt seemed "
    "great awful dull brilliant moving boring clever tired warm cold funny sad long short"
).split()


def check_predictions(response, texts: list[str]) -> None:  # noqa: ANN001
    if response.status_code != 200:
        response.failure(f"status {response.status_code}")
        return
    predictions = response.json().get("predictions", [])
    if len(predictions) != len(texts) or any(abs(sum(p["score"] for p in row) - 1) > 1e-4 for row in predictions):
        response.failure("malformed predictions")


class CourseUser(HttpUser):
    """The course load test: mostly one cached payload, sometimes ten varied sentences."""

    wait_time = between(0.05, 0.15)

    @task(10)
    def predict(self) -> None:
        texts = CACHED if random.random() < CACHE_RATE else random.sample(VARIED, len(VARIED))
        with self.client.post("/predict", json={"text": texts}, name="/predict", catch_response=True) as response:
            check_predictions(response, texts)

    @task(1)
    def health(self) -> None:
        with self.client.get("/health", catch_response=True) as response:
            if response.status_code != 200 or response.json().get("status") != "healthy":
                response.failure(f"health: {response.status_code}")


class SaturationUser(HttpUser):
    """Unique sentences only: every text reaches the model. 503 (load shed) is expected near saturation."""

    wait_time = between(0, 0.01)

    @task
    def predict_unique(self) -> None:
        texts = [" ".join(random.choices(WORDS, k=12)) + f" {uuid.uuid4().hex[:8]}" for _ in range(TEXTS)]
        with self.client.post("/predict", json={"text": texts}, name="/predict (unique)", catch_response=True) as response:
            if response.status_code == 503:
                response.success()  # shed by design, with Retry-After
            else:
                check_predictions(response, texts)
