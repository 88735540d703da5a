"""The per-text prediction cache.

    keys.py        texts -> (cache key, token ids): the model's fingerprint plus the ids it will see
    backends.py    Redis (with a circuit breaker) or an in-process LRU; values that do not parse are misses
    prediction.py  get_or_compute: lookup, sharing texts in flight, admission, the model call, write-back
"""
