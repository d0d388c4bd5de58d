"""The Traces page logic (Streamlit AppTest) against a live collector fed with known data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from streamlit.testing.v1 import AppTest

from tests.support.stack import CollectorProc, collector_proc, wait_trace

pytestmark = pytest.mark.e2e

PAGE = str(Path(__file__).resolve().parents[2] / "dashboard" / "pages" / "traces.py")


@pytest.fixture
def fed_collector(data_dir: Path) -> Iterator[tuple[CollectorProc, str]]:
    with collector_proc(data_dir) as col:
        provider = TracerProvider(resource=Resource.create({"service.name": "apptest-svc"}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{col.otlp_url}/v1/traces"))
        )
        tracer = provider.get_tracer("t")
        with (
            tracer.start_as_current_span("GET /items/{id}") as root,
            tracer.start_as_current_span("SELECT items"),
        ):
            pass
        provider.shutdown()
        trace_id = format(root.get_span_context().trace_id, "032x")
        wait_trace(col.query_url, trace_id)
        yield col, trace_id


def _page(query_url: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("NARROWS_QUERY_URL", query_url)
    return AppTest.from_file(PAGE, default_timeout=30)


def test_recent_traces_are_listed(fed_collector, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    col, trace_id = fed_collector
    at = _page(col.query_url, monkeypatch).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert any(trace_id in str(v) for v in table["trace"])


def test_deep_link_opens_the_trace(fed_collector, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    col, trace_id = fed_collector
    at = _page(col.query_url, monkeypatch)
    at.query_params["trace_id"] = trace_id
    at.run()
    assert not at.exception
    assert any(trace_id in s.value for s in at.subheader)
    spans = at.dataframe[0].value
    assert set(spans["operation"]) == {"GET /items/{id}", "SELECT items"}


@pytest.mark.parametrize(
    ("trace_id", "expected"),
    [
        ("not-hex", "is not a trace id"),
        ("ab" * 16, "was not found"),
    ],
)
def test_bad_or_unknown_trace_id_is_friendly(
    fed_collector,
    monkeypatch: pytest.MonkeyPatch,
    trace_id: str,
    expected: str,  # type: ignore[no-untyped-def]
) -> None:
    col, _ = fed_collector
    at = _page(col.query_url, monkeypatch)
    at.query_params["trace_id"] = trace_id
    at.run()
    assert not at.exception
    shown = [e.value for e in at.error] + [w.value for w in at.warning]
    assert any(expected in s for s in shown)


def test_collector_down_shows_a_banner_naming_the_url(
    monkeypatch: pytest.MonkeyPatch, free_port: int
) -> None:
    url = f"http://127.0.0.1:{free_port}"
    at = _page(url, monkeypatch).run()
    assert not at.exception
    assert any(url in e.value and "unreachable" in e.value for e in at.error)
