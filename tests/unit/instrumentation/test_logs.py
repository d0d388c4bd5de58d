"""Logs: JSON lines with trace ids and service.name, stdlib bridged, OTLP records, redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from fastapi import FastAPI
from starlette.testclient import TestClient

from instrumentation.logs import OtlpLogBridge, install_logging
from instrumentation.redaction import MASK, Redactor
from instrumentation.testing import TestTelemetry, telemetry_for_tests


@pytest.fixture
def log_stream(tel: TestTelemetry) -> Iterator[io.StringIO]:
    """Our pipeline on the root logger for one test; the previous logging setup restored."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    bridge = OtlpLogBridge(tel.telemetry.logger_provider)
    handler = install_logging("unit", "INFO", Redactor(), bridge, stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        for h in saved_handlers:
            if h not in root.handlers:
                root.addHandler(h)
        root.setLevel(saved_level)
        structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Our JSON lines, without the test client's own httpx request lines."""
    parsed = [json.loads(x) for x in stream.getvalue().splitlines() if x.strip()]
    return [x for x in parsed if x.get("logger") != "httpx"]


def test_structlog_event_is_one_json_line_with_the_contract_keys(
    tel: TestTelemetry, log_stream: io.StringIO
) -> None:
    with tel.telemetry.tracer().start_as_current_span("work") as span:
        structlog.get_logger("shop").info("order placed", order_id=7)
    (line,) = lines(log_stream)
    ctx = span.get_span_context()
    assert line["event"] == "order placed"
    assert line["level"] == "info"
    assert line["logger"] == "shop"
    assert line["service.name"] == "unit"
    assert line["order_id"] == 7
    assert line["trace_id"] == format(ctx.trace_id, "032x")
    assert line["span_id"] == format(ctx.span_id, "016x")
    assert line["timestamp"].endswith("Z")
    assert "T" in line["timestamp"]


def test_outside_a_span_there_are_no_trace_ids(log_stream: io.StringIO) -> None:
    structlog.get_logger("shop").info("idle")
    (line,) = lines(log_stream)
    assert "trace_id" not in line
    assert "span_id" not in line


def test_stdlib_logging_is_bridged_into_the_same_pipeline(
    tel: TestTelemetry, log_stream: io.StringIO
) -> None:
    with tel.telemetry.tracer().start_as_current_span("work") as span:
        logging.getLogger("legacy.module").warning("disk at %d%%", 91)
    (line,) = lines(log_stream)
    assert line["event"] == "disk at 91%"
    assert line["level"] == "warning"
    assert line["logger"] == "legacy.module"
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")


def test_secrets_are_redacted_on_stdout_and_in_the_otlp_record(
    tel: TestTelemetry, log_stream: io.StringIO
) -> None:
    structlog.get_logger("auth").info("login", password="hunter2", header="Bearer abcdef123")
    logging.getLogger("auth.legacy").info("retry with token=s3cr3t")
    first, second = lines(log_stream)
    assert first["password"] == MASK
    assert first["header"] == "Bearer " + MASK
    assert "s3cr3t" not in second["event"]
    records = [r.log_record for r in tel.logs()]
    assert records[0].attributes["password"] == MASK
    assert "s3cr3t" not in str(records[1].body)


def test_each_line_is_also_an_otlp_log_record_with_trace_context(
    tel: TestTelemetry, log_stream: io.StringIO
) -> None:
    with tel.telemetry.tracer().start_as_current_span("work") as span:
        structlog.get_logger("shop").error("payment failed", order_id=3)
    (record,) = [r.log_record for r in tel.logs()]
    ctx = span.get_span_context()
    assert record.body == "payment failed"
    assert record.severity_text == "ERROR"
    assert record.trace_id == ctx.trace_id
    assert record.span_id == ctx.span_id
    assert record.attributes["order_id"] == 3


def test_exporter_internal_loggers_are_not_shipped_over_otlp(
    tel: TestTelemetry, log_stream: io.StringIO
) -> None:
    logging.getLogger("opentelemetry.sdk.trace").error("down")
    logging.getLogger("instrumentation.export").warning("exporting failed")
    assert len(lines(log_stream)) == 2
    assert tel.logs() == ()


def test_access_log_is_off_by_default(tel: TestTelemetry, log_stream: io.StringIO) -> None:
    app = FastAPI()

    @app.get("/x")
    async def x() -> dict[str, bool]:
        return {"ok": True}

    tel.telemetry.instrument(app)
    TestClient(app).get("/x")
    assert lines(log_stream) == []


def test_access_log_setting_writes_one_line_per_request(log_stream: io.StringIO) -> None:
    app = FastAPI()

    @app.get("/items/{i}")
    async def item(i: int) -> dict[str, int]:
        return {"i": i}

    with telemetry_for_tests({"NARROWS_ACCESS_LOG": "true"}) as t:
        t.telemetry.instrument(app)
        TestClient(app).get("/items/4")
        (span,) = t.spans()
    (line,) = lines(log_stream)
    assert line["event"] == "http.request"
    assert line["http_route"] == "/items/{i}"
    assert line["status"] == 200
    assert line["trace_id"] == format(span.context.trace_id, "032x")


def test_stream_setting_follows_the_current_stderr_and_quiets_per_request_client_logs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    handler = install_logging("cli", "INFO", Redactor(), None, stream="stderr")
    try:
        structlog.get_logger("tool").info("working")
        logging.getLogger("httpx").info("HTTP Request: GET http://x")
        out, err = capsys.readouterr()  # swapped in after set-up: still used
        assert out == ""
        (line,) = [json.loads(x) for x in err.splitlines()]
        assert line["event"] == "working"
    finally:
        root.removeHandler(handler)
        for h in saved_handlers:
            if h not in root.handlers:
                root.addHandler(h)
        root.setLevel(saved_level)
        logging.getLogger("httpx").setLevel(logging.NOTSET)
        structlog.reset_defaults()
