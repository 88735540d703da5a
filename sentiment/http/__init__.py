"""HTTP in front of the API: everything between a client's bytes and the service's `classify`.

    routes.py     the public service's paths, named once
    schemas.py    request and response of POST /predict (limits, Swagger examples)
    errors.py     every error body the service writes, one table from kind to status
    identity.py   X-Request-ID, timing headers, the access line
    draining.py   after SIGTERM: new requests 503 at once, accepted ones counted until done
    traffic.py    BentoML's traffic metrics labelled with the served routes only
    body_size.py  request/response body sizes on /metrics
    auth.py       API keys
    limits.py     body size and arrival time, JSON only, shedding before the body is read
    predict.py    POST /predict answered without BentoML's per-API machinery, after every check above
    openapi.py    the OpenAPI document made true (this API's title and description, statuses, bearer scheme, /info), checked at start-up
    info.py       GET /info and the API's description, from facts computed at start-up
    page.py       the API's page at /: the Swagger UI, nothing loaded from elsewhere
"""
