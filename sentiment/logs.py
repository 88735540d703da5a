"""Log lines that carry no request text and cannot be forged; JSON lines on request.

* BentoML logs every 400 at ERROR with the pydantic ValidationError's traceback, whose
  message quotes the offending value (`input_value='...'`): a client's text in the log.
  BentoML's `log_exception` (bentoml/_internal/server/http_app.py, called by
  `_bentoml_impl/server/app.py` for every refused request) logs on that module's logger;
  a filter there turns such a record into one WARNING line naming the fields and the
  error types, without values or traceback. `check_request_values_hidden` is the
  start-up tripwire (no upstream setting exists; bentoml/BentoML has no issue for it).
  `sentiment/http/predict.py`, which answers POST /predict itself, logs the same line.
* BentoML's own access log writes the raw, percent-decoded request path: `/x%0a...`
  becomes a second, forged line. It is turned off (`logging.access.enabled`, a documented
  service setting) and `sentiment/http/identity.py` writes the access line instead, with
  control characters escaped.
* `LOG_FORMAT=json`: one JSON object per line (python-json-logger, BentoML's own
  dependency) on the handlers BentoML configures, for log pipelines.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

# the logger of BentoML's log_exception
BENTOML_EXCEPTION_LOGGER = "bentoml._internal.server.http_app"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(component)s %(message)s"


class ValidationErrorsWithoutValues(logging.Filter):
    """A logged pydantic ValidationError becomes one WARNING line: fields and error types, no values."""

    def filter(self, record: logging.LogRecord) -> bool:
        from pydantic import ValidationError

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValidationError):
            record.msg, record.args = "%s", (refused(error),)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def refused(error: ValidationError) -> str:
    """The one log line of a request refused with a 400: fields and error types, never values."""
    where = "; ".join(f"{_where(e)}: {e['type']}" for e in error.errors(include_input=False))
    return f"request refused (400): {error.error_count()} validation error(s) for {error.title}: {where}"


def _where(error: dict) -> str:
    """The field of an error; an unknown field's name is the client's own text, so it is not repeated."""
    if error["type"] == "extra_forbidden":
        return "(an unknown field)"
    return ".".join(map(str, error["loc"])) or "(body)"


def hide_request_values() -> None:
    logger = logging.getLogger(BENTOML_EXCEPTION_LOGGER)
    if not any(isinstance(f, ValidationErrorsWithoutValues) for f in logger.filters):
        logger.addFilter(ValidationErrorsWithoutValues())


def check_request_values_hidden() -> None:
    """Tripwire: BentoML still logs refused requests through the logger this module filters."""
    from _bentoml_impl.server import app
    from bentoml._internal.server import http_app

    if app.log_exception is not http_app.log_exception or http_app.logger.name != BENTOML_EXCEPTION_LOGGER:
        raise RuntimeError(
            "BentoML no longer logs refused requests through bentoml._internal.server.http_app.logger: "
            "the filter of sentiment/logs.py that keeps request values out of the log has no effect"
        )
    if not any(isinstance(f, ValidationErrorsWithoutValues) for f in http_app.logger.filters):
        raise RuntimeError("sentiment/logs.py's filter is not installed: request values could reach the log")


def use_json_lines() -> None:
    """Every handler BentoML configured (on its logger and the root) writes JSON lines."""
    from pythonjsonlogger.json import JsonFormatter

    formatter = JsonFormatter(JSON_FIELDS, rename_fields={"levelname": "level", "asctime": "time"})
    for logger in (logging.getLogger("bentoml"), logging.getLogger()):
        for handler in logger.handlers:
            handler.setFormatter(formatter)


def escape(text: str, limit: int = 200) -> str:
    """`text` for a log line: control characters (newlines above all) escaped, at most `limit` characters."""
    safe = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[:limit])
    return safe + ("…" if len(text) > limit else "")
