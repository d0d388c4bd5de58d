"""Real-world payloads in, the same data out: OTLP examples (all three signals, protobuf and
JSON), Jaeger's otlp2jaeger trace, every Zipkin fixture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.ingest import Kind, _otlp_json
from tests.conftest import FIXTURES
from tests.integration.collector.conftest import PROTOBUF, post_json, spans_of
from tests.support.collector import LiveCollector

pytestmark = pytest.mark.integration

_SIGNALS = {
    "trace": ("traces", ExportTraceServiceRequest, Kind.OTLP_TRACES_JSON),
    "metrics": ("metrics", ExportMetricsServiceRequest, Kind.OTLP_METRICS_JSON),
    "logs": ("logs", ExportLogsServiceRequest, Kind.OTLP_LOGS_JSON),
}


def _as_protobuf(path: Path, message_cls: Any, kind: Kind) -> bytes:
    msg = message_cls()
    _otlp_json(path.read_bytes(), msg, kind)
    return bytes(msg.SerializeToString())


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
def test_otlp_examples_ingest_for_all_three_signals(live: LiveCollector, encoding: str) -> None:
    for name, (signal, cls, kind) in _SIGNALS.items():
        path = FIXTURES / "otlp" / f"{name}.json"
        if encoding == "json":
            r = httpx.post(
                f"{live.otlp_url}/v1/{signal}",
                content=path.read_bytes(),
                headers={"content-type": "application/json"},
                timeout=10,
            )
            assert r.status_code == 200, (name, r.text)
            assert r.json() == {}
        else:
            r = httpx.post(
                f"{live.otlp_url}/v1/{signal}",
                content=_as_protobuf(path, cls, kind),
                headers=PROTOBUF,
                timeout=10,
            )
            assert r.status_code == 200, (name, r.content)
            assert r.content == b""
    live.wait_stored()
    stats = live.query("/api/narrows/stats").json()
    assert stats["spans"]["count"] == 1
    assert stats["logs"]["count"] == 1
    assert stats["metric_points"]["count"] > 4
    trace = live.query("/api/v3/traces/5b8efff798038103d269b633813fc60c").json()["result"]
    (span,) = spans_of(trace)
    assert span["spanId"] == "eee19b7ec3c1b174"
    assert span["name"] == "I'm a server span"
    logs = live.query("/api/narrows/logs", traceId="5b8efff798038103d269b633813fc60c").json()
    assert logs["logs"][0]["body"] == "Example log record"
    assert logs["logs"][0]["spanId"] == "eee19b7ec3c1b174"
    names = {
        m["family"]
        for m in live.query(
            "/api/narrows/metrics", start="2018-12-13T14:00:00Z", end="2018-12-13T15:00:00Z"
        ).json()["metrics"]
    }
    assert {"my_counter_total", "my_gauge", "my_histogram"} <= names


def _canonical(spans: list[dict[str, Any]]) -> list[Any]:
    def attrs(items: list[dict[str, Any]] | None) -> list[Any]:
        return sorted((a["key"], json.dumps(a["value"], sort_keys=True)) for a in items or [])

    return sorted(
        json.dumps(
            {
                **{k: v for k, v in s.items() if k not in ("attributes", "status")},
                "attributes": attrs(s.get("attributes")),
                "status": {k: v for k, v in (s.get("status") or {}).items() if v},
            },
            sort_keys=True,
        )
        for s in spans
    )


def test_otlp2jaeger_trace_comes_back_with_the_same_spans_and_attributes(
    live: LiveCollector,
) -> None:
    doc = json.loads((FIXTURES / "jaeger" / "otlp2jaeger-in.json").read_text())
    assert post_json(live.otlp_url + "/v1/traces", doc).status_code == 200
    live.wait_stored()
    sent = spans_of(doc)
    got = live.query(f"/api/v3/traces/{sent[0]['traceId']}").json()["result"]
    assert _canonical(spans_of(got)) == _canonical(sent)
    rs = got["resourceSpans"][0]
    assert rs["resource"]["attributes"] == doc["resourceSpans"][0]["resource"]["attributes"]
    assert rs["scopeSpans"][0]["scope"] == {"name": "telemetrygen"}


@pytest.mark.parametrize("name", sorted(p.stem for p in (FIXTURES / "zipkin").glob("*.json")))
def test_zipkin_fixture_comes_back_complete(shared_live: LiveCollector, name: str) -> None:
    raw = json.loads((FIXTURES / "zipkin" / f"{name}.json").read_text())
    r = httpx.post(
        shared_live.zipkin_url + "/api/v2/spans",
        content=json.dumps(raw),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 202, r.text
    shared_live.wait_stored()
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for s in raw:
        by_trace.setdefault(s["traceId"].rjust(32, "0"), []).append(s)
    for trace_id, sent in by_trace.items():
        resp = shared_live.query(f"/api/v3/traces/{trace_id}")
        assert resp.status_code == 200, resp.text
        result = resp.json()["result"]
        got = spans_of(result)
        # Fixtures may be loaded by another case too (dedupe is per request body), so compare
        # the distinct (id, kind, start) set: shared client/server spans stay two spans.
        want = {(s["id"], s.get("kind", ""), s.get("timestamp", 0) * 1000) for s in sent}
        kinds = {2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
        have = {
            (s["spanId"], kinds.get(s.get("kind", 0), ""), int(s["startTimeUnixNano"])) for s in got
        }
        assert have == want
        parents = {s["id"]: s.get("parentId") for s in sent}
        for s in got:
            p = parents[s["spanId"]]
            assert s.get("parentSpanId") == (None if p in (None, s["spanId"]) else p)
        services = {
            a["value"]["stringValue"]
            for rs in result["resourceSpans"]
            for a in rs["resource"]["attributes"]
            if a["key"] == "service.name"
        }
        assert services == {
            (s.get("localEndpoint") or {}).get("serviceName") or "unknown_service" for s in sent
        }


def test_zipkin_skew_keeps_timestamps_as_sent_and_shared_spans_apart(live: LiveCollector) -> None:
    raw = json.loads((FIXTURES / "zipkin" / "skew.json").read_text())
    assert (
        httpx.post(
            live.zipkin_url + "/api/v2/spans",
            content=json.dumps(raw),
            headers={"content-type": "application/json"},
        ).status_code
        == 202
    )
    live.wait_stored()
    got = spans_of(live.query("/api/v3/traces/1e223ff1f80f1c69").json()["result"])
    assert len(got) == 4
    shared = [s for s in got if s["spanId"] == "74280ae0c10d8062"]
    assert sorted(s["kind"] for s in shared) == [2, 3]
    assert sorted(int(s["startTimeUnixNano"]) for s in got) == sorted(
        s["timestamp"] * 1000 for s in raw
    )


def test_protobuf_fixture_parse_matches_json_ingest() -> None:
    """The JSON→protobuf path accepts the example exactly (hex ids, string int64s)."""
    msg = ExportTraceServiceRequest()
    _otlp_json((FIXTURES / "otlp" / "trace.json").read_bytes(), msg, Kind.OTLP_TRACES_JSON)
    span = msg.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    ParseDict({}, ExportTraceServiceRequest())
