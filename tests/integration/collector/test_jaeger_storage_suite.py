"""Jaeger's storage-integration suite through our HTTP API: load every fixture trace via
``/v1/traces``, run every case of ``queries.json`` through ``/api/v3/traces``, and get
exactly the expected traces — plus the suite's large-trace and duplicate-id cases."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest

from tests.conftest import FIXTURES
from tests.integration.collector.conftest import post_json, spans_of
from tests.support.collector import LiveCollector

pytestmark = pytest.mark.integration

SUITE = FIXTURES / "jaeger/storage-integration"


def _tag_text(value: Any) -> str:
    """Jaeger compares tag values as strings: 123 → "123", 72.5 → "72.5", true → "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _cases() -> list[dict[str, Any]]:
    return json.loads((SUITE / "queries.json").read_text())


def _trace_ids(doc: dict[str, Any]) -> set[str]:
    return {sp["traceId"] for sp in spans_of(doc)}


@pytest.fixture(scope="module")
def loaded(shared_live: LiveCollector) -> LiveCollector:
    for path in sorted((SUITE / "traces").glob("*.json")):
        r = post_json(shared_live.otlp_url + "/v1/traces", json.loads(path.read_text()))
        assert r.status_code == 200, (path.name, r.text)
        assert r.json() == {}, (path.name, r.text)
    shared_live.wait_stored()
    return shared_live


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["Caption"])
def test_query_returns_exactly_the_expected_traces(
    loaded: LiveCollector, case: dict[str, Any]
) -> None:
    q = case["Query"]
    params: dict[str, str] = {
        "query.serviceName": q["ServiceName"],
        "query.startTimeMin": q["StartTimeMin"],
        "query.startTimeMax": q["StartTimeMax"],
        "query.searchDepth": str(q["NumTraces"]),
    }
    if q["OperationName"]:
        params["query.operationName"] = q["OperationName"]
    if q["DurationMin"]:
        params["query.durationMin"] = f"{q['DurationMin']}ns"
    if q["DurationMax"]:
        params["query.durationMax"] = f"{q['DurationMax']}ns"
    if q["Tags"]:
        params["query.attributes"] = json.dumps({k: _tag_text(v) for k, v in q["Tags"].items()})
    r = loaded.query("/api/v3/traces", **params)
    assert r.status_code == 200, r.text
    got = r.json()["result"]
    expected_ids: set[str] = set()
    expected_spans = 0
    for name in case["ExpectedFixtures"]:
        doc = json.loads((SUITE / "traces" / f"{name}.json").read_text())
        expected_ids |= _trace_ids(doc)
        expected_spans += len(spans_of(doc))
    assert _trace_ids(got) == expected_ids
    assert len(spans_of(got)) == expected_spans


def test_services_and_operations_of_the_example_trace(loaded: LiveCollector) -> None:
    services = loaded.query("/api/v3/services").json()["services"]
    assert {"example-service-1", "example-service-2", "example-service-3"} <= set(services)
    ops = loaded.query("/api/v3/operations", service="example-service-1").json()["operations"]
    assert sorted((o["name"], o["spanKind"]) for o in ops) == [
        ("example-operation-1", "internal"),
        ("example-operation-3", "server"),
        ("example-operation-4", "client"),
    ]
    servers = loaded.query("/api/v3/operations", service="example-service-1", spanKind="server")
    assert [o["name"] for o in servers.json()["operations"]] == ["example-operation-3"]


def _large_trace(total: int, dup_every: int) -> dict[str, Any]:
    """As Jaeger's writeLargeTraceWithDuplicateSpanIds: copies of the example trace's first
    span, each a second later, with every ``dup_every``-th reusing the first span's id."""
    doc = json.loads((SUITE / "traces" / "example_trace.json").read_text())
    scope = doc["resourceSpans"][0]["scopeSpans"][0]
    first = scope["spans"][0]
    spans = []
    for i in range(total):
        sp = copy.deepcopy(first)
        if not (dup_every and i > 0 and i % dup_every == 0):
            sp["spanId"] = f"{i + 1:016x}"
        sp["startTimeUnixNano"] = str(int(first["startTimeUnixNano"]) + (i + 1) * 10**9)
        sp["endTimeUnixNano"] = str(int(first["endTimeUnixNano"]) + (i + 1) * 10**9)
        spans.append(sp)
    scope["spans"] = spans
    doc["resourceSpans"] = doc["resourceSpans"][:1]
    doc["resourceSpans"][0]["scopeSpans"] = [scope]
    return doc


def test_a_trace_of_10008_spans_comes_back_whole(live: LiveCollector) -> None:
    doc = _large_trace(10_008, 0)
    assert post_json(live.otlp_url + "/v1/traces", doc).status_code == 200
    live.wait_stored()
    trace_id = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
    r = live.query(f"/api/v3/traces/{trace_id}")
    assert r.status_code == 200
    spans = spans_of(r.json()["result"])
    assert len(spans) == 10_008
    assert len({s["spanId"] for s in spans}) == 10_008


def test_spans_sharing_an_id_are_all_kept(live: LiveCollector) -> None:
    doc = _large_trace(200, 20)
    assert post_json(live.otlp_url + "/v1/traces", doc).status_code == 200
    live.wait_stored()
    trace_id = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
    spans = spans_of(live.query(f"/api/v3/traces/{trace_id}").json()["result"])
    assert len(spans) == 200
    assert len(spans) - len({s["spanId"] for s in spans}) == 9


def test_unknown_trace_is_404_in_jaeger_shape(live: LiveCollector) -> None:
    r = httpx.get(f"{live.query_url}/api/v3/traces/{'0' * 31}1", timeout=5)
    assert r.status_code == 404
    assert r.json() == {"error": {"httpCode": 404, "message": "No traces found"}}
