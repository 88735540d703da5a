"""Logs without request values, lines that cannot be forged, JSON lines."""

from __future__ import annotations

import io
import json
import logging

import pytest
from pydantic import BaseModel, ValidationError

from sentiment import logs

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)

MARKER = "a-secret-review-text-7f3a"


class Request(BaseModel):
    model_config = {"extra": "forbid"}
    text: list[str]
    top_k: int | None = None


def captured(logger: logging.Logger) -> io.StringIO:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    return stream


def test_bentoml_s_log_of_a_refused_request_names_fields_not_values() -> None:
    from bentoml._internal.server.http_app import log_exception

    logs.hide_request_values()
    logs.check_request_values_hidden()
    stream = captured(logging.getLogger(logs.BENTOML_EXCEPTION_LOGGER))

    class FakeRequest:
        url = type("U", (), {"path": "/predict"})()
        method = "POST"

    try:
        Request.model_validate({"text": [MARKER, 3], "top_k": MARKER, MARKER: 1})
    except ValidationError:
        log_exception(FakeRequest())  # what BentoML does with every 400
    line = stream.getvalue()
    assert MARKER not in line and "Traceback" not in line
    assert line.startswith("WARNING request refused (400): 3 validation error(s) for Request: "
                           "text.1: string_type; top_k: int_parsing; (an unknown field): extra_forbidden")


def test_the_tripwire_sees_the_filter_missing() -> None:
    logger = logging.getLogger(logs.BENTOML_EXCEPTION_LOGGER)
    saved = list(logger.filters)
    for f in saved:
        logger.removeFilter(f)
    try:
        with pytest.raises(RuntimeError, match="not installed"):
            logs.check_request_values_hidden()
    finally:
        for f in saved:
            logger.addFilter(f)


def test_escape_keeps_a_path_on_one_line_and_short() -> None:
    forged = "/x\n2026-12-01T00:00:00+0000 [INFO] [entry_service:sentiment:1] 10.0.0.1 POST /predict 200"
    assert "\n" not in logs.escape(forged) and logs.escape(forged).startswith("/x\\n2026")
    assert logs.escape("/a\x1b[31m\tb") == "/a\\x1b[31m\\tb"
    assert logs.escape("/" + "x" * 500) == "/" + "x" * 199 + "…"


def test_json_lines_on_bentoml_s_handlers() -> None:
    logger = logging.getLogger("bentoml")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        logs.use_json_lines()
        logging.getLogger("bentoml.sentiment.test").warning("hello %s", "world")
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["message"] == "hello world" and line["level"] == "WARNING" and line["name"] == "bentoml.sentiment.test"
