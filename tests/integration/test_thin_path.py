"""The thin path: the official OTLP exporter and the instrumented demo reach the collector API."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from narrows.ports import free_port
from tests.support.procs import OwnedProcess, narrows_cmd, wait_http
from tests.support.stack import collector_proc, wait_trace

pytestmark = pytest.mark.integration


def test_official_otlp_exporter_spans_come_back_from_jaeger_v3(data_dir: Path) -> None:
    with collector_proc(data_dir) as col:
        provider = TracerProvider(resource=Resource.create({"service.name": "thin-test"}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{col.otlp_url}/v1/traces"))
        )
        tracer = provider.get_tracer("test")
        with (
            tracer.start_as_current_span("parent") as parent,
            tracer.start_as_current_span("child", attributes={"app.shard.id": "2"}),
        ):
            pass
        provider.shutdown()
        trace_id = format(parent.get_span_context().trace_id, "032x")

        doc = wait_trace(col.query_url, trace_id)
        spans = [
            s
            for rs in doc["result"]["resourceSpans"]  # type: ignore[index]
            for ss in rs["scopeSpans"]
            for s in ss["spans"]
        ]
        assert sorted(s["name"] for s in spans) == ["child", "parent"]
        child = next(s for s in spans if s["name"] == "child")
        assert child["parentSpanId"] == format(parent.get_span_context().span_id, "016x")
        assert {"key": "app.shard.id", "value": {"stringValue": "2"}} in child["attributes"]
        services = httpx.get(f"{col.query_url}/api/v3/services", timeout=5).json()
        assert "thin-test" in services["services"]


def test_unknown_and_malformed_trace_ids(data_dir: Path) -> None:
    with collector_proc(data_dir) as col:
        missing = httpx.get(f"{col.query_url}/api/v3/traces/{'ab' * 16}", timeout=5)
        assert missing.status_code == 404
        assert missing.json()["error"]["httpCode"] == 404
        bad = httpx.get(f"{col.query_url}/api/v3/traces/not-a-trace", timeout=5)
        assert bad.status_code == 400
        assert "trace" in bad.json()["error"]["message"]


def test_instrumented_demo_request_reaches_the_collector(data_dir: Path) -> None:
    with collector_proc(data_dir) as col:
        port = free_port()
        demo = OwnedProcess.start(
            "demo",
            narrows_cmd(
                "demo",
                "--data-dir",
                str(data_dir),
                "--demo-port",
                str(port),
                "--seed-items",
                "100",
            ),
            data_dir.parent / "logs",
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": col.otlp_url,
                "OTEL_BSP_SCHEDULE_DELAY": "200",
            },
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", 60, demo)
            traceparent_id = "4bf92f3577b34da6a3ce929d0e0e4736"
            resp = httpx.get(
                f"http://127.0.0.1:{port}/items/7",
                timeout=5,
                headers={"traceparent": f"00-{traceparent_id}-00f067aa0ba902b7-01"},
            )
            assert resp.status_code == 200
            started = time.monotonic()
            doc = wait_trace(col.query_url, traceparent_id, timeout=10)
            assert time.monotonic() - started < 10
            names = [
                s["name"]
                for rs in doc["result"]["resourceSpans"]  # type: ignore[index]
                for ss in rs["scopeSpans"]
                for s in ss["spans"]
            ]
            assert any("/items/" in n for n in names)
        finally:
            demo.stop()
