"""The trace client reads a real Jaeger v2's API v3 answers (Jaeger's own snapshots)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from dashboard.sources.http import JsonClient
from dashboard.sources.jaeger import JaegerV3Client
from dashboard.sources.query import TimeWindow, TraceQuery

ROUTES = {
    "/api/v3/services": "GetServices.json",
    "/api/v3/operations": "GetOperations.json",
    "/api/v3/traces": "FindTraces.json",
    "/api/v3/trace-summaries": "FindTraceSummaries.json",
}


@pytest.fixture
def client(fixtures_dir: Path) -> tuple[JaegerV3Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    snapshots = fixtures_dir / "jaeger" / "api-v3"

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        name = ROUTES.get(path, "GetTrace.json" if path.startswith("/api/v3/traces/") else "")
        if not name:
            return httpx.Response(404, json={"error": {"httpCode": 404, "message": "no route"}})
        return httpx.Response(200, content=(snapshots / name).read_bytes())

    transport = httpx.MockTransport(answer)
    return JaegerV3Client(JsonClient("http://jaeger.test", transport=transport)), seen


def test_services_operations_and_summaries_parse(client) -> None:  # type: ignore[no-untyped-def]
    jaeger, seen = client
    assert jaeger.services()
    ops = jaeger.operations("frontend", "server")
    assert ops[0].name == "get_users"
    assert ops[0].span_kind == "server"
    assert dict(seen[-1].url.params) == {"service": "frontend", "spanKind": "server"}
    window = TimeWindow.last(60)
    (summary,) = jaeger.summaries(TraceQuery(window, service="frontend", duration_min_ms=1.5))
    assert summary.trace_id == "00000000000000000000000000000001"
    assert (summary.span_count, summary.error_count, summary.duration_ms) == (2, 1, 1000.0)
    params = dict(seen[-1].url.params)
    assert params["query.serviceName"] == "frontend"
    assert params["query.durationMin"] == "1500us"


def test_find_and_get_traces_parse_otlp_json(client) -> None:  # type: ignore[no-untyped-def]
    jaeger, _ = client
    traces = jaeger.traces(TraceQuery(TimeWindow.last(60), service="frontend"))
    assert traces
    assert all(len(t.trace_id) == 32 for t in traces)
    one = jaeger.trace(traces[0].trace_id)
    assert one is not None
    assert one.spans
    with pytest.raises(ValueError, match="32 lowercase"):
        jaeger.trace("../../api/v3/services")
