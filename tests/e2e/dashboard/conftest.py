"""One collector per module, fed with the known workload (and two large traces)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import set_span_in_context
from streamlit.testing.v1 import AppTest

from tests.conftest import FIXTURES
from tests.support.dashboard import Workload, feed_workload
from tests.support.procs import wait_for
from tests.support.stack import CollectorProc, collector_proc, wait_trace

APP = str(Path(__file__).resolve().parents[3] / "dashboard" / "app.py")
BIG_SPANS = 10_000


@dataclass
class Fed:
    collector: CollectorProc
    work: Workload
    zipkin_trace: str
    big_trace: str


def _send_big_trace(otlp_url: str) -> str:
    """A 10,000-span trace: one root, 99 children with 100 leaves each (minus one)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "bulk"}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{otlp_url}/v1/traces"),
            max_queue_size=BIG_SPANS * 2,
            max_export_batch_size=2000,
        )
    )
    tracer = provider.get_tracer("bulk")
    t0 = time.time_ns() - 60_000_000_000
    root = tracer.start_span("batch job", start_time=t0)
    ctx = set_span_in_context(root)
    n = 1
    for i in range(99):
        mid = tracer.start_span(f"step {i % 7}", context=ctx, start_time=t0 + i * 1000)
        mctx = set_span_in_context(mid)
        for j in range(100):
            if n + 1 >= BIG_SPANS:
                break
            tracer.start_span("leaf", context=mctx, start_time=t0 + i * 1000 + j).end(
                t0 + i * 1000 + j + 500
            )
            n += 1
        mid.end(t0 + i * 1000 + 900)
        n += 1
    root.end(t0 + 200_000)
    provider.shutdown()
    return format(root.get_span_context().trace_id, "032x")


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    data = tmp_path_factory.mktemp("dash") / "data"
    data.mkdir()
    with collector_proc(data) as col:
        work = feed_workload(col.otlp_url)
        big = _send_big_trace(col.otlp_url)
        zipkin = json.loads(
            (FIXTURES / "zipkin" / "smartthings-mobile-web-install.json").read_text()
        )
        resp = httpx.post(f"{col.zipkin_url}/api/v2/spans", json=zipkin, timeout=30)
        assert resp.status_code == 202, resp.text
        zipkin_id = zipkin[0]["traceId"].rjust(32, "0")
        for tid in (work.failed[-1], big, zipkin_id):
            wait_trace(col.query_url, tid, timeout=60)

        def all_logs() -> bool:
            r = httpx.get(f"{col.query_url}/api/narrows/logs", params={"limit": 1000})
            return len(r.json().get("logs", [])) >= work.logs

        wait_for(all_logs, 20, "logs to be queryable")
        yield Fed(col, work, zipkin_id, big)


def page(name: str, query_url: str, monkeypatch: pytest.MonkeyPatch, **params: str) -> AppTest:
    """The real app (navigation, sidebar) switched to ``pages/<name>.py``, with params."""
    monkeypatch.setenv("NARROWS_SOURCE", "narrows")
    monkeypatch.setenv("NARROWS_QUERY_URL", query_url)
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(f"pages/{name}.py")
    return at


def table(at, *columns: str):  # type: ignore[no-untyped-def]
    """The first dataframe on the page having these columns (AppTest exposes no keys)."""
    for d in at.dataframe:
        if set(columns) <= set(d.value.columns):
            return d.value
    raise AssertionError(f"no table with columns {columns}")
