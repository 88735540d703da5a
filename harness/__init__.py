"""Real processes for the tests and the benchmark: `bentoml serve`, `redis-server`, and
reading their Prometheus metrics. Not part of the service (the Bento does not include it)."""
