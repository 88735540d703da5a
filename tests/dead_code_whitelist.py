# Names the dead-code check (tests/test_dead_code.py, vulture) must not report: each is
# used by name by a framework, never called from this project's own code. This file is
# read by vulture only; it is never imported or run.

model_config  # pydantic: the models' configuration (sentiment/settings.py, sentiment/http/schemas.py)
predictions  # pydantic: the response field of PredictResponse, serialised by BentoML
_deprecated_torch_threads  # pydantic: a model validator of Settings, run on construction
truncation_side  # transformers: read by the tokenizer on its next call (sentiment/model/tokenization.py)
classify  # BentoML: the model service's batchable API, called over HTTP by the public service
close_cache  # BentoML: an @bentoml.on_shutdown hook
status_code  # BentoML: read from the request context after predict returns (service.py)
Noop  # BentoML: `bentoml serve benchmark.noop_service:Noop` (benchmark/run.py)
NoopUntraced  # BentoML: `bentoml serve benchmark.noop_service:NoopUntraced` (benchmark/run.py)
CourseUser  # Locust: user classes are named on the command line (README, "Load tests")
SaturationUser  # Locust
wait_time  # Locust: read by the runner between tasks
health  # Locust: a @task
predict_unique  # Locust: a @task
pytestmark  # pytest: each test module's tier (pytest.ini)
pytest_collection_modifyitems  # pytest: a hook (tests/conftest.py)
restore_sigterm  # pytest: a fixture, named in @pytest.mark.usefixtures (tests/sentiment/test_drain.py)
batching  # pydantic: a field of ServiceInfo (sentiment/http/schemas.py), serialised into GET /info
regroup_wait  # pydantic: a field of BatchingLimits (sentiment/http/schemas.py), set by keyword, serialised into GET /info
placement  # pydantic: a field of ServedBy (sentiment/http/schemas.py), set by keyword, serialised into GET /info
binary_location  # selenium: the browser binary it starts (harness/browser.py)
exc_text  # logging: a LogRecord's fields, read by the handlers' formatters (sentiment/logs.py)
levelname  # logging
levelno  # logging
do_POST  # http.server: the handler of a POST (harness/otlp.py)
log_message  # http.server: its request log, silenced (harness/otlp.py)
_details_only_when_asked  # pydantic: the serializer of PredictResponse
cached  # pydantic: a field of TextDetails, set by keyword and serialised (sentiment/http/schemas.py)
