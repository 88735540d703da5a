"""The sentiment service's building blocks; `service.py` puts them together.

    http/      between a client's bytes and `predict`: routes, schema, errors, identity, keys, limits, OpenAPI
    cache/     the per-text prediction cache and a request's way to the model (get_or_compute)
    batching/  every lever of batch size: admission, call merging, BentoML's batch policy, length groups
    model/     tokenizer, engines, inference, labels and scores from the model's config
    store/     the model store: import, exports, the accuracy guard, data files (train_or_import.py)
    settings.py, metrics.py, startup.py, logs.py (no request text, no forged lines, JSON),
    drain.py (shutdown in order), respawn.py (a dead worker comes back)

Each subpackage imports only those below it: http, cache, store -> model -> batching
(tests/sentiment/test_layers.py).
"""

__version__ = "1.1.0"
