"""Scenario 8 for the collector: with ``NARROWS_TOKEN`` every ingest and query route needs
the bearer token (401 without or with a wrong one, 2xx with it, the official exporters
included); secrets sent in headers, query strings, URLs, attributes, log lines and metric
labels never reach storage unmasked — not the DuckDB store, not the write-ahead log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import duckdb
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from benchmarks._payloads import trace_request
from collector.receivers.scrape import ACCEPT, Scraper, ScrapeTarget
from narrows.ports import free_port
from tests.integration.collector.conftest import JSON, PROTOBUF
from tests.integration.collector.test_query_abuse import ROUTES
from tests.support.collector import LiveCollector, live_collector

pytestmark = pytest.mark.integration

TOKEN = "t0ken-for-tests"


def _ingest_calls(c: LiveCollector) -> list[tuple[str, bytes, dict[str, str]]]:
    logs = ExportLogsServiceRequest()
    logs.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=1)
    metrics = ExportMetricsServiceRequest()
    metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="m").gauge.data_points.add(
        time_unix_nano=1, as_double=1
    )
    return [
        (c.otlp_url + "/v1/traces", trace_request(4, seed=3), PROTOBUF),
        (c.otlp_url + "/v1/traces", b"{}", JSON),
        (c.otlp_url + "/v1/metrics", metrics.SerializeToString(), PROTOBUF),
        (c.otlp_url + "/v1/logs", logs.SerializeToString(), PROTOBUF),
        (c.zipkin_url + "/api/v2/spans", b"[]", JSON),
    ]


def test_every_ingest_and_query_route_needs_the_token(tmp_path: Path) -> None:
    wrong = [
        {},
        {"authorization": "Bearer nope"},
        {"authorization": f"Basic {TOKEN}"},
        {"authorization": TOKEN},
        {"authorization": f"Bearer {TOKEN}x"},
        {"authorization": f"Bearer {TOKEN[:-1]}"},
        {"x-api-key": TOKEN},
    ]
    right = [{"authorization": f"Bearer {TOKEN}"}, {"authorization": f"bearer {TOKEN}"}]
    checked = 0
    with live_collector(tmp_path, token=TOKEN) as c, httpx.Client(timeout=30) as client:
        for url, body, ctype in _ingest_calls(c):
            for headers in wrong:
                r = client.post(url, content=body, headers={**ctype, **headers})
                assert r.status_code == 401, (url, headers, r.status_code)
                assert r.headers["www-authenticate"].startswith("Bearer")
                checked += 1
            for headers in right:
                r = client.post(url, content=body, headers={**ctype, **headers})
                assert r.status_code in (200, 202), (url, headers, r.text)
                checked += 1
        c.wait_stored()
        for path, (base, _) in [*ROUTES.items(), ("/metrics", ({}, []))]:
            for headers in wrong:
                r = client.get(c.query_url + path, params=base, headers=headers)
                assert r.status_code == 401, (path, headers)
                assert r.json()["error"]["httpCode"] == 401
                checked += 1
            for headers in right:
                r = client.get(c.query_url + path, params=base, headers=headers)
                assert r.status_code in (200, 404), (path, r.text)  # 404: no such trace
                checked += 1
        # Liveness for supervisors and load balancers needs no token.
        assert client.get(c.query_url + "/healthz").status_code == 200
    print(f"token: {checked} requests checked")


def test_official_exporters_need_the_token(tmp_path: Path) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "auth"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("op"):
        pass
    spans = memory.get_finished_spans()
    with live_collector(tmp_path, token=TOKEN) as c:
        endpoint = c.otlp_url + "/v1/traces"
        without = OTLPSpanExporter(endpoint=endpoint)
        wrong = OTLPSpanExporter(endpoint=endpoint, headers={"authorization": "Bearer x"})
        good = OTLPSpanExporter(endpoint=endpoint, headers={"authorization": f"Bearer {TOKEN}"})
        # 401 is final for the exporter: no retry storm against a wrong token.
        assert without.export(spans) == SpanExportResult.FAILURE
        assert wrong.export(spans) == SpanExportResult.FAILURE
        assert good.export(spans) == SpanExportResult.SUCCESS
        c.wait_stored()
        assert c.query("/api/narrows/stats").status_code == 401
        authed = httpx.get(
            c.query_url + "/api/narrows/stats", headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert authed.json()["spans"]["count"] == 1


# ---- secrets never reach storage unmasked -----------------------------------------------

SECRETS = [f"SECRET{i:02d}zz" for i in range(1, 18)]


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _secret_spans() -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv("service.name", "leaky"), _kv("db.password", SECRETS[8])])
    sp = Span(
        trace_id=bytes.fromhex("5b8efff798038103d269b633813fc60c"),
        span_id=bytes.fromhex("eee19b7ec3c1b174"),
        name="GET /cart",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_000_100_000_000,
    )
    header = KeyValue(key="http.request.header.authorization")
    header.value.array_value.CopyFrom(
        ArrayValue(values=[AnyValue(string_value=f"Bearer {SECRETS[0]}")])
    )
    sp.attributes.extend(
        [
            header,
            _kv(
                "url.full",
                f"https://alice:{SECRETS[1]}@shop.example/cart?api_key={SECRETS[2]}&page=1",
            ),
            _kv("url.query", f"token={SECRETS[3]}&q=shoes"),
            _kv("db.connection_string", f"host=db password={SECRETS[4]} dbname=shop"),
            _kv("user.password", SECRETS[5]),
            _kv("http.route", "/cart"),
        ]
    )
    ev = sp.events.add(name="exception", time_unix_nano=1_700_000_000_050_000_000)
    ev.attributes.append(_kv("exception.message", f"login failed password={SECRETS[6]}"))
    sp.status.code = 2
    sp.status.message = f"upstream said: Bearer {SECRETS[7]} is invalid"
    req.resource_spans[0].scope_spans.add().spans.append(sp)
    return req.SerializeToString()


def _secret_json_spans() -> bytes:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "leaky"}}]
                    },
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": "6b8efff798038103d269b633813fc60c",
                                    "spanId": "aee19b7ec3c1b174",
                                    "name": "GET /json",
                                    "startTimeUnixNano": "1700000000000000000",
                                    "endTimeUnixNano": "1700000000100000000",
                                    "attributes": [
                                        {
                                            "key": "http.request.header.cookie",
                                            "value": {"stringValue": f"sid={SECRETS[9]}"},
                                        }
                                    ],
                                }
                            ]
                        }
                    ],
                }
            ]
        }
    ).encode()


def _secret_zipkin() -> bytes:
    return json.dumps(
        [
            {
                "traceId": "7b8efff798038103d269b633813fc60c",
                "id": "bee19b7ec3c1b174",
                "name": "get /zipkin",
                "timestamp": 1_700_000_000_000_000,
                "duration": 1000,
                "localEndpoint": {"serviceName": "leaky"},
                "tags": {
                    "http.request.header.x-api-key": SECRETS[10],
                    "http.url": f"http://bob:{SECRETS[11]}@h.example/x",
                },
            }
        ]
    ).encode()


def _secret_logs() -> bytes:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.append(_kv("service.name", "leaky"))
    rec = rl.scope_logs.add().log_records.add(time_unix_nano=1_700_000_000_000_000_000)
    rec.body.string_value = f"calling upstream with Authorization: Bearer {SECRETS[12]}"
    rec.attributes.append(_kv("password", SECRETS[13]))
    rec.trace_id = bytes.fromhex("5b8efff798038103d269b633813fc60c")
    return req.SerializeToString()


def _secret_metrics() -> bytes:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(_kv("service.name", "leaky"))
    dp = (
        rm.scope_metrics.add()
        .metrics.add(name="logins")
        .gauge.data_points.add(time_unix_nano=1_700_000_000_000_000_000, as_double=1)
    )
    dp.attributes.append(_kv("api_key", SECRETS[14]))
    return req.SerializeToString()


def _scrape_secret(c: LiveCollector) -> None:
    registry = CollectorRegistry()
    Gauge("sessions", "open sessions", ["token"], registry=registry).labels(SECRETS[15]).set(1)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        scraper = Scraper(c.collector.pipeline, [])
        target = ScrapeTarget(f"http://127.0.0.1:{port}/metrics", 1.0)

        async def once() -> bool:
            async with httpx.AsyncClient(headers={"Accept": ACCEPT}) as client:
                return await scraper.scrape_once(client, target)

        assert asyncio.run(once())
    finally:
        server.shutdown()
        thread.join(5)


def test_secrets_never_reach_storage_unmasked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with live_collector(data, retention_ns=0, max_size=0) as c, httpx.Client(timeout=30) as h:
        for url, body, ctype in [
            (c.otlp_url + "/v1/traces", _secret_spans(), PROTOBUF),
            (c.otlp_url + "/v1/traces", _secret_json_spans(), JSON),
            (c.zipkin_url + "/api/v2/spans", _secret_zipkin(), JSON),
            (c.otlp_url + "/v1/logs", _secret_logs(), PROTOBUF),
            (c.otlp_url + "/v1/metrics", _secret_metrics(), PROTOBUF),
        ]:
            r = h.post(url, content=body, headers=ctype)
            assert r.status_code in (200, 202), r.text
        _scrape_secret(c)
        c.wait_stored()
        answers = [
            c.query("/api/v3/traces/5b8efff798038103d269b633813fc60c").text,
            c.query("/api/v3/traces/6b8efff798038103d269b633813fc60c").text,
            c.query("/api/v3/traces/7b8efff798038103d269b633813fc60c").text,
            c.query("/api/narrows/logs", traceId="5b8efff798038103d269b633813fc60c").text,
        ]
        for text in answers:
            assert "SECRET" not in text, text
        first = answers[0]
        # What is not secret is kept: the host, the path, the harmless query parameters.
        assert "REDACTED:REDACTED@shop.example/cart?api_key=[REDACTED]&page=1" in first
        assert "q=shoes" in first
        assert "/cart" in first
    # At rest: every table of the store, read back as text, and every file byte for byte
    # (the write-ahead log keeps request bodies as they were written).
    conn = duckdb.connect(str(data / "narrows.duckdb"), read_only=True)
    try:
        tables = [t for (t,) in conn.execute("SHOW TABLES").fetchall()]
        rows = 0
        for table in tables:
            for (text,) in conn.execute(f"SELECT t::VARCHAR FROM {table} t").fetchall():
                rows += 1
                assert "SECRET" not in text, (table, text)
    finally:
        conn.close()
    assert rows >= 8
    files = [p for p in data.rglob("*") if p.is_file()]
    assert any(p.parent.name == "wal" for p in files)
    for path in files:
        assert b"SECRET" not in path.read_bytes(), f"a secret is on disk in {path.name}"
