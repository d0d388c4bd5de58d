"""OTLP/HTTP and Zipkin receivers speak the protocols: statuses, partial success, gzip,
limits, token, deduplication of retries — and the official exporters work unmodified."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from benchmarks._payloads import trace_request
from tests.integration.collector.conftest import JSON, PROTOBUF, spans_of
from tests.support.collector import live_collector

pytestmark = pytest.mark.integration


def _request_with_bad_spans() -> bytes:
    req = ExportTraceServiceRequest()
    req.ParseFromString(trace_request(8, seed=3))
    spans = req.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = bytes(16)  # all-zero
    spans[1].span_id = b"\x01\x02"  # wrong length
    spans[2].end_time_unix_nano = spans[2].start_time_unix_nano - 1  # ends before it starts
    return bytes(req.SerializeToString())


def test_partial_success_counts_rejected_spans_and_stores_the_rest(live) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(
        live.otlp_url + "/v1/traces", content=_request_with_bad_spans(), headers=PROTOBUF
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-protobuf"
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 3
    assert "invalid trace id" in resp.partial_success.error_message
    live.wait_stored()
    assert live.query("/api/narrows/stats").json()["spans"]["count"] == 5


def test_json_partial_success_is_json(live) -> None:  # type: ignore[no-untyped-def]
    doc = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {"traceId": "00" * 16, "spanId": "01" * 8, "name": "zero trace"},
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "EEE19B7EC3C1B174",
                                "name": "ok",
                                "startTimeUnixNano": "1",
                                "endTimeUnixNano": "2",
                                "kind": 2,
                            },
                        ]
                    }
                ]
            }
        ]
    }
    r = httpx.post(live.otlp_url + "/v1/traces", content=json.dumps(doc), headers=JSON)
    assert r.status_code == 200
    assert r.json()["partialSuccess"]["rejectedSpans"] == "1"


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"\xff\xff\xff", PROTOBUF, 400),
        (b"{not json", JSON, 400),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', JSON, 400),
        (b"x", {"content-type": "text/plain"}, 415),
        (b"x", {**PROTOBUF, "content-encoding": "br"}, 400),
        (b"not gzip", {**PROTOBUF, "content-encoding": "gzip"}, 400),
    ],
)
def test_bad_requests_get_a_status_body(
    live, body: bytes, headers: dict[str, str], status: int
) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(live.otlp_url + "/v1/traces", content=body, headers=headers)
    assert r.status_code == status
    if r.headers["content-type"] == "application/x-protobuf":
        assert Status.FromString(r.content).message
    else:
        assert r.json()["message"]


def test_wrong_method_is_405(live) -> None:  # type: ignore[no-untyped-def]
    r = httpx.get(live.otlp_url + "/v1/logs")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"


def test_gzip_bomb_is_413_without_inflating_it(tmp_path: Path) -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros → ~64 KiB
    with live_collector(tmp_path, max_request_bytes=1 << 20) as c:
        r = httpx.post(
            c.otlp_url + "/v1/traces",
            content=bomb,
            headers={**PROTOBUF, "content-encoding": "gzip"},
            timeout=30,
        )
        assert r.status_code == 413
        assert "after decompression" in Status.FromString(r.content).message
        small = gzip.compress(trace_request(16))
        ok = httpx.post(
            c.otlp_url + "/v1/traces",
            content=small,
            headers={**PROTOBUF, "content-encoding": "gzip"},
        )
        assert ok.status_code == 200


def test_a_multi_member_gzip_body_is_read_to_the_end(live) -> None:  # type: ignore[no-untyped-def]
    """RFC 1952 allows several gzip members back to back; the second half of the body
    must not be dropped silently."""
    body = trace_request(40, seed=77)
    half = len(body) // 2
    two = gzip.compress(body[:half]) + gzip.compress(body[half:])
    r = httpx.post(
        live.otlp_url + "/v1/traces", content=two, headers={**PROTOBUF, "content-encoding": "gzip"}
    )
    assert r.status_code == 200, r.text
    live.wait_stored()
    assert live.query("/api/narrows/stats").json()["spans"]["count"] == 40


def test_a_retried_request_is_stored_once(live) -> None:  # type: ignore[no-untyped-def]
    body = trace_request(32, seed=9)
    for _ in range(3):
        assert (
            httpx.post(live.otlp_url + "/v1/traces", content=body, headers=PROTOBUF).status_code
            == 200
        )
    zipkin = json.dumps(
        [{"traceId": "a" * 16, "id": "b" * 16, "name": "x", "timestamp": 1, "duration": 2}]
    )
    for _ in range(2):
        assert (
            httpx.post(live.zipkin_url + "/api/v2/spans", content=zipkin, headers=JSON).status_code
            == 202
        )
    live.wait_stored()
    assert live.query("/api/narrows/stats").json()["spans"]["count"] == 33


def _split(body: bytes, lo: int, hi: int) -> bytes:
    """A request of spans ``lo:hi`` of ``body`` (another body, some of the same spans)."""
    req = ExportTraceServiceRequest.FromString(body)
    spans = req.resource_spans[0].scope_spans[0].spans
    keep = list(spans)[lo:hi]
    del spans[:]
    spans.extend(keep)
    return bytes(req.SerializeToString())


def _zipkin(kind: str, shared: bool = False, indent: int | None = None) -> bytes:
    span = {
        "traceId": "c" * 32,
        "id": "d" * 16,
        "parentId": "e" * 16,
        "name": "get /x",
        "kind": kind,
        "timestamp": 1_700_000_000_000_000,
        "duration": 1500,
        "localEndpoint": {"serviceName": kind.lower()},
    }
    if shared:
        span["shared"] = True
    return json.dumps([span], indent=indent).encode()


def test_spans_resent_in_other_requests_are_stored_once_across_a_restart(tmp_path: Path) -> None:
    body = trace_request(40, seed=21)
    with live_collector(tmp_path, retention_ns=0, max_size=0) as c:
        for lo, hi in ((0, 25), (15, 30)):
            r = httpx.post(
                c.otlp_url + "/v1/traces", content=_split(body, lo, hi), headers=PROTOBUF
            )
            assert r.status_code == 200
        r = httpx.post(c.zipkin_url + "/api/v2/spans", content=_zipkin("CLIENT"), headers=JSON)
        assert r.status_code == 202
        assert c.query("/api/narrows/stats").json()["spans"]["count"] == 31
    with live_collector(tmp_path, retention_ns=0, max_size=0) as c:
        r = httpx.post(c.otlp_url + "/v1/traces", content=_split(body, 20, 40), headers=PROTOBUF)
        assert r.status_code == 200
        # The client span again in another body (not a byte-identical retry), and the
        # server span that shares its id.
        for doc in (_zipkin("CLIENT", indent=1), _zipkin("SERVER", shared=True)):
            r = httpx.post(c.zipkin_url + "/api/v2/spans", content=doc, headers=JSON)
            assert r.status_code == 202
        assert c.query("/api/narrows/stats").json()["spans"]["count"] == 42
        shared = spans_of(c.query("/api/v3/traces/" + "c" * 32).json()["result"])
        assert sorted(s["kind"] for s in shared) == [2, 3], "shared client/server spans both kept"
        metrics = c.query("/metrics").text
        assert "narrows_writer_duplicate_spans_total 11.0" in metrics


def test_token_is_required_on_ingest_and_query(tmp_path: Path) -> None:
    with live_collector(tmp_path, token="s3cret") as c:
        assert (
            httpx.post(c.otlp_url + "/v1/traces", content=b"", headers=PROTOBUF).status_code == 401
        )
        assert httpx.get(c.query_url + "/api/v3/services").status_code == 401
        wrong = {"authorization": "Bearer nope"}
        assert httpx.get(c.query_url + "/api/v3/services", headers=wrong).status_code == 401
        assert httpx.post(c.zipkin_url + "/api/v2/spans", content=b"[]").status_code == 401
        good = {"authorization": "Bearer s3cret"}
        assert httpx.get(c.query_url + "/api/v3/services", headers=good).status_code == 200
        assert httpx.get(c.query_url + "/healthz").status_code == 200


def test_official_exporters_send_successfully(live) -> None:  # type: ignore[no-untyped-def]
    provider = TracerProvider(resource=Resource.create({"service.name": "exporters"}))
    otlp = OTLPSpanExporter(endpoint=f"{live.otlp_url}/v1/traces")
    zipkin = ZipkinExporter(endpoint=f"{live.zipkin_url}/api/v2/spans")
    provider.add_span_processor(SimpleSpanProcessor(otlp))
    provider.add_span_processor(SimpleSpanProcessor(zipkin))
    tracer = provider.get_tracer("t")
    with (
        tracer.start_as_current_span("root", attributes={"http.response.status_code": 200}) as root,
        tracer.start_as_current_span("child", attributes={"app.cache.hit": True}),
    ):
        pass
    provider.shutdown()
    live.wait_stored()
    trace_id = format(root.get_span_context().trace_id, "032x")
    spans = spans_of(live.query(f"/api/v3/traces/{trace_id}").json()["result"])
    assert len(spans) == 4  # each span once over OTLP and once over Zipkin
    statuses = [
        a["value"]
        for s in spans
        for a in s.get("attributes", [])
        if a["key"] == "http.response.status_code"
    ]
    assert statuses == [{"intValue": "200"}, {"intValue": "200"}]


def test_self_metrics_use_the_otel_collector_names(live) -> None:  # type: ignore[no-untyped-def]
    httpx.post(live.otlp_url + "/v1/traces", content=trace_request(10, seed=1), headers=PROTOBUF)
    live.wait_stored()
    text = httpx.get(live.query_url + "/metrics").text
    assert 'otelcol_receiver_accepted_spans_total{receiver="otlp",transport="http"} 10.0' in text
    assert "otelcol_exporter_queue_capacity" in text
    assert "otelcol_exporter_sent_spans_total" in text


def test_query_bounds_are_enforced(live) -> None:  # type: ignore[no-untyped-def]
    ten_years = live.query(
        "/api/narrows/red", start="2015-01-01T00:00:00Z", end="2025-01-01T00:00:00Z"
    )
    assert ten_years.status_code == 400
    assert "range" in ten_years.json()["error"]["message"]
    huge = live.query("/api/narrows/logs", limit=str(10**9))
    assert huge.status_code == 200
    deep = live.query(
        "/api/v3/trace-summaries",
        **{
            "query.startTimeMin": "2024-01-01T00:00:00Z",
            "query.startTimeMax": "2024-01-01T01:00:00Z",
            "query.searchDepth": str(10**9),
        },
    )
    assert deep.status_code == 200
    bad = live.query(
        "/api/v3/traces",
        **{"query.startTimeMin": "yesterday", "query.startTimeMax": "2024-01-01T01:00:00Z"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("malformed parameter query.startTimeMin")
    time.sleep(0)
