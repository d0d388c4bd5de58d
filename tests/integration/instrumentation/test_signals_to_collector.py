"""Logs over OTLP and traces over Zipkin v2 JSON reach the Narrows collector, joined by trace."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.instrumentation.conftest import (
    AppStarter,
    attrs,
    get_trace,
    logs_of,
    traceparent,
)
from tests.support.stack import CollectorProc

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_log_records_arrive_as_otlp_logs_with_the_request_trace_and_redacted(
    collector: CollectorProc, start_app: AppStarter
) -> None:
    proc, url = start_app(
        "shop",
        {
            "NARROWS_TEST_INSTRUMENT": "1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_url,
            "OTEL_SERVICE_NAME": "shop",
        },
    )
    trace_id, header = traceparent(7, "10")
    assert httpx.get(f"{url}/checkout/7", headers={"traceparent": header}, timeout=5).is_success
    ((_, server),) = [(r, s) for r, s in get_trace(collector, trace_id, want=1) if s["kind"] == 2]
    logs = logs_of(collector, trace_id, want=2)
    bodies = sorted(rec["body"] for rec in logs)
    assert bodies == ["order paid", "stock low for order 7"]  # each record exactly once
    by_body = {rec["body"]: rec for rec in logs}
    paid = by_body["order paid"]
    assert paid["service"] == "shop"
    assert paid["severity_text"] == "INFO"
    assert paid["spanId"] == server["spanId"]
    assert paid["attributes"]["order_id"] in (7, "7")
    assert paid["attributes"]["card_token"] == "[REDACTED]"
    assert paid["attributes"]["note"] == "Bearer [REDACTED]"
    legacy = by_body["stock low for order 7"]  # stdlib logging, bridged
    assert legacy["severity_text"] == "WARN"
    assert legacy["traceId"] == trace_id
    # the same events on stdout as JSON lines, with the same trace id
    assert f'"trace_id": "{trace_id}"' in proc.log()
    assert "tok_4242" not in proc.log()


def test_zipkin_json_exporter_reaches_the_collector(
    collector: CollectorProc, start_app: AppStarter
) -> None:
    _, url = start_app(
        "shop-zipkin",
        {
            "NARROWS_TEST_INSTRUMENT": "1",
            "OTEL_TRACES_EXPORTER": "zipkin_json",
            "OTEL_EXPORTER_ZIPKIN_ENDPOINT": f"{collector.zipkin_url}/api/v2/spans",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_SERVICE_NAME": "shop-zipkin",
        },
    )
    trace_id, header = traceparent(3, "21")
    assert httpx.get(f"{url}/items/3", headers={"traceparent": header}, timeout=5).is_success
    spans = get_trace(collector, trace_id, want=2)
    server = next(s for _, s in spans if s["name"] == "GET /items/{item_id}")
    assert server["kind"] == 2
    a = attrs(server)
    assert a["http.route"] == "/items/{item_id}"
    assert str(a["http.response.status_code"]) == "200"
    resource = next(r for r, s in spans if s is server)
    assert attrs(resource)["service.name"] == "shop-zipkin"


def test_spans_still_queued_at_interpreter_exit_are_flushed(collector: CollectorProc) -> None:
    """A script that never calls shutdown(): the atexit hook sends what is queued."""
    import os
    import subprocess
    import sys

    script = (
        "from instrumentation import configure\n"
        "t = configure(service_name='batch-job')\n"
        "with t.tracer().start_as_current_span('nightly-job') as s:\n"
        "    print(format(s.get_span_context().trace_id, '032x'), flush=True)\n"
    )
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_url,
        "OTEL_BSP_SCHEDULE_DELAY": "60000",  # nothing would leave before exit on its own
    }
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    trace_id = next(x for x in out.stdout.split() if len(x) == 32 and not x.startswith("{"))
    ((_, span),) = get_trace(collector, trace_id, want=1)
    assert span["name"] == "nightly-job"
