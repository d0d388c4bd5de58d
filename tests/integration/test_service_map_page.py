"""The Service map page (Streamlit AppTest through the real app and navigation) on both
sources, over a real collector fed through OTLP with the micro topology's synthetic traffic
(gateway, three catalog replicas — catalog-2 slow —, orders): the slow edge stands out and
is picked, a deep link opens another edge's calls, and on `prometheus+jaeger+loki` the map
is drawn from a trace sample through the Jaeger API (the collector's API v3 plays Jaeger,
a private Prometheus without HTTP metrics plays Prometheus)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.sources.model import Span, Trace
from narrows.ports import free_port
from tests.conftest import require_program
from tests.support.otlp_json import export_requests
from tests.support.servers import PrometheusServer, prometheus_server
from tests.support.stack import CollectorProc, collector_proc, wait_trace
from tests.support.synthetic import T0_NS
from tests.support.synthetic_micro import CATALOG, GATEWAY, Fault, MicroScenario, generate

pytestmark = pytest.mark.integration
APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
SLOW_EDGE = f"{GATEWAY}[gateway-0] → {CATALOG}[catalog-2]"
WINDOW_S = 15 * 60  # the sidebar's default range


@dataclass
class Fed:
    collector: CollectorProc
    prometheus: PrometheusServer
    requests: int
    #: A GET /items/{id} trace through catalog-2, and its gateway → catalog client span.
    slow_trace: Trace
    client_span: Span


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    require_program("prometheus")
    tmp = tmp_path_factory.mktemp("servicemap")
    slow = Fault("slow_replica", {"instance": 2, "delay_ms": 20.0})
    traces = generate(
        MicroScenario(seed=31, rate_rps=40.0, duration_s=10.0, warmup_s=2.0, faults=(slow,))
    ).traces
    shift = time.time_ns() - 120 * 10**9 - T0_NS  # two minutes ago: inside the window
    (tmp / "collector").mkdir()
    with (
        collector_proc(tmp / "collector") as col,
        prometheus_server(tmp / "prometheus", [f"127.0.0.1:{free_port()}"]) as prom,
    ):
        for body in export_requests(traces, shift_ns=shift):
            resp = httpx.post(f"{col.otlp_url}/v1/traces", json=body, timeout=30)
            assert resp.status_code == 200, resp.text
        for t in (traces[0], traces[-1]):
            wait_trace(col.query_url, t.trace_id, timeout=30)
        slow_trace, client = next(
            (t, s)
            for t in traces
            for s in t.spans
            if s.attributes.get("app.upstream.instance") == "catalog-2" and t.spans[0].name == "GET"
        )
        yield Fed(col, prom, len(traces), slow_trace, client)


def _page(
    fed: Fed,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    name: str = "service_map",
    **params: str,
) -> AppTest:
    monkeypatch.setenv("NARROWS_SOURCE", source)
    monkeypatch.setenv("NARROWS_QUERY_URL", fed.collector.query_url)
    monkeypatch.setenv("NARROWS_PROMETHEUS_URL", fed.prometheus.url)
    monkeypatch.setenv("NARROWS_JAEGER_URL", fed.collector.query_url)
    monkeypatch.delenv("NARROWS_LOKI_URL", raising=False)
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(f"pages/{name}.py")
    return at.run()


def _table(at: AppTest, *columns: str):  # type: ignore[no-untyped-def]
    for d in at.dataframe:
        if set(columns) <= set(d.value.columns):
            return d.value
    raise AssertionError(f"no table with columns {columns}")


def test_the_slow_replicas_edge_stands_out_and_opens_its_calls(
    fed: Fed, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _page(fed, monkeypatch, "narrows")
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "Service map"
    assert any(SLOW_EDGE in w.value and "slow" in w.value for w in at.warning)
    assert at.selectbox(key="service_map_edge").value == SLOW_EDGE
    # The URL deep-links the picked edge.
    assert at.query_params["from"] == f"{GATEWAY}[gateway-0]"
    assert at.query_params["to"] == f"{CATALOG}[catalog-2]"
    calls = _table(at, "trace", "network_ms")
    assert len(calls) > 0
    assert all(link.startswith("traces?trace_id=") for link in calls["trace"])
    assert (calls["duration_ms"] > 20.0).all()  # every call to the slow replica
    edges = _table(at, "from", "to", "rate_rps").set_index(["from", "to"])
    # Rates are the sample's counts scaled to the window's requests (the collector's RED).
    entry = edges.loc[("narrows-load", f"{GATEWAY}[gateway-0]"), "rate_rps"]
    assert entry == pytest.approx(fed.requests / WINDOW_S, rel=0.02)
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    labels = [t for trace in figure["data"] for t in (trace.get("text") or [])]
    assert any(str(t).startswith("SLOW") for t in labels)


def test_a_deep_link_opens_that_edge_and_a_bad_one_warns(
    fed: Fed, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = "narrows-orders[orders-0]", f"{CATALOG}[catalog-0]"
    at = _page(fed, monkeypatch, "narrows", **{"from": source, "to": target})
    assert not at.exception
    assert at.selectbox(key="service_map_edge").value == f"{source} → {target}"
    calls = _table(at, "trace", "network_ms")
    assert set(calls["operation"]) == {"POST /stock/reserve"}
    assert (calls["network_ms"] > 0).all()
    bad = _page(fed, monkeypatch, "narrows", **{"from": "nobody", "to": target})
    assert not bad.exception
    assert any("from=" in w.value for w in bad.warning)


def test_the_map_draws_from_a_jaeger_sample_on_the_scaled_source(
    fed: Fed, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _page(fed, monkeypatch, "prometheus+jaeger+loki")
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="service_map_edge").value == SLOW_EDGE
    assert any("sampled traces" in c.value for c in at.caption)
    edges = _table(at, "from", "to", "status").set_index(["from", "to"])
    replicas = [f"{CATALOG}[catalog-{i}]" for i in range(3)]
    assert {edges.loc[(f"{GATEWAY}[gateway-0]", r), "status"] for r in replicas} == {
        "ok",
        "slow",
    }


def test_the_trace_view_marks_service_boundaries_and_each_hops_network_time(
    fed: Fed, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = fed.client_span
    at = _page(
        fed,
        monkeypatch,
        "narrows",
        "traces",
        trace_id=fed.slow_trace.trace_id,
        span_id=client.span_id,
    )
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Services"] == "3"  # the load generator, the gateway, the catalog
    assert metrics["Service hops"] == "2"
    spans = _table(at, "network_ms", "span_id").set_index("span_id")
    server = next(s for s in fed.slow_trace.spans if s.parent_span_id == client.span_id)
    expected = client.duration_ms - server.duration_ms
    assert spans.loc[client.span_id, "network_ms"] == pytest.approx(expected, abs=0.002)
    assert spans["network_ms"].notna().sum() == 2
    shown = [i.value for i in at.info]
    assert any(
        f"Network between {GATEWAY} and {CATALOG} [catalog-2]: {expected:.2f} ms" in v
        for v in shown
    ), shown
    assert any("service.instance.id=gateway-0" in c.value for c in at.caption)
    waterfall = json.loads(at.get("plotly_chart")[0].proto.spec)
    labels = waterfall["data"][0]["y"]
    assert sum("▸" in label for label in labels) == 2  # entering the gateway and the catalog
    assert len(waterfall["layout"]["shapes"]) == 2
