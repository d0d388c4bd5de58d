"""Source contract: the `narrows` and `prometheus+jaeger+loki` sources give the same answers
on the same workload wherever both can answer.

Real servers: our collector (spans and logs over OTLP; its Jaeger API v3 doubles as the
Jaeger of the second source) and a private Prometheus scraping the same requests'
metrics (with exemplars) from a prometheus-client exporter. Loki answers are recorded
(tests/data/loki): only the request built and the parsing are checked against them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import start_http_server

from dashboard.sources.base import Unavailable
from dashboard.sources.narrows import NarrowsSource
from dashboard.sources.query import LogQuery, SpanFilter, TimeWindow
from dashboard.sources.scaled import PrometheusJaegerLokiSource
from narrows.ports import free_port
from tests.conftest import require_program
from tests.support.dashboard import SERVICE, Workload, WorkloadMetrics, feed_workload
from tests.support.loki_replay import LokiReplay, loki_replay
from tests.support.procs import wait_for
from tests.support.servers import prometheus_server
from tests.support.stack import collector_proc, wait_trace

pytestmark = [pytest.mark.integration, pytest.mark.slow]
APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


@dataclass
class Both:
    narrows: NarrowsSource
    scaled: PrometheusJaegerLokiSource
    work: Workload
    window: TimeWindow
    loki: LokiReplay
    prometheus_url: str


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    """One setup for the module (the same servers as ``prometheus_factory`` starts)."""
    require_program("prometheus")
    tmp = tmp_path_factory.mktemp("sources")
    metrics = WorkloadMetrics()
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    data = tmp / "data"
    data.mkdir()
    try:
        with (
            prometheus_server(tmp / "prometheus", [f"127.0.0.1:{port}"]) as prom,
            collector_proc(data) as col,
            loki_replay() as loki,
        ):
            work = feed_workload(col.otlp_url, requests=120, spacing_ms=400, metrics=metrics)
            wait_trace(col.query_url, work.failed[-1], timeout=20)
            total = sum(len(v) for v in work.by_route.values())

            def scraped() -> bool:
                r = prom.query("sum(http_server_request_duration_seconds_count)")
                return bool(r) and float(r[0]["value"][1]) == total  # type: ignore[index]

            wait_for(scraped, 20, "Prometheus to scrape the whole workload")
            start = datetime.fromtimestamp(work.start_ns / 1e9, UTC) - timedelta(seconds=60)
            window = TimeWindow(start, datetime.now(UTC) + timedelta(seconds=5), step_s=10)
            yield Both(
                NarrowsSource(col.query_url),
                PrometheusJaegerLokiSource(prom.url, col.query_url, loki.url),
                work,
                window,
                loki,
                prom.url,
            )
    finally:
        server.shutdown()
        thread.join(timeout=5)


def _totals(frame) -> dict[str, tuple[int, int]]:  # type: ignore[no-untyped-def]
    """group → (requests, errors) over the whole window."""
    g = frame.groupby("group")[["count", "errors"]].sum()
    return {str(k): (int(r["count"]), int(r["errors"])) for k, r in g.iterrows()}


def test_both_sources_agree_on_the_workload(both: Both) -> None:
    """One test for the one expensive setup; each block states the question compared."""
    n, p, w, window = both.narrows, both.scaled, both.work, both.window
    server = SpanFilter(service=SERVICE, kind="server")

    # Services and routes: the same Jaeger API on both.
    assert n.services() == p.services() == [SERVICE]

    # RED per route: request and error totals are equal (counter differences, not increase()).
    red_n = n.red(window, server, "span.name").data
    red_p = p.red(window, server, "span.name").data
    assert _totals(red_n) == _totals(red_p)
    assert {k: v[0] for k, v in _totals(red_p).items()} == {
        k: len(v) for k, v in w.by_route.items()
    }
    assert _totals(red_p)["POST /orders"][1] == len(w.failed)

    # Latency histogram: cumulative counts agree at every bound both use.
    route = SpanFilter(service=SERVICE, operation="GET /items/{item_id}", kind="server")
    h_n, h_p = n.latency(window, route, over_time=False), p.latency(window, route, over_time=False)
    cum_n = dict(zip(h_n.bounds_ms, h_n.totals().cumsum(), strict=False))
    cum_p = dict(zip(h_p.bounds_ms, h_p.totals().cumsum(), strict=False))
    common = sorted(set(cum_n) & set(cum_p))
    assert len(common) >= 10
    assert [int(cum_n[b]) for b in common] == [int(cum_p[b]) for b in common]

    # Exemplars (Prometheus only) point at traces the trace API has, with their durations.
    exemplars = p.exemplars(window, "http_server_request_duration_seconds", {})
    assert exemplars
    for e in exemplars[:5]:
        trace = n.get_trace(e.trace_id)
        assert trace is not None
        assert e.value * 1000 == pytest.approx(w.durations_ms[e.trace_id], abs=1e-6)

    # Shards: queries per shard equal; pool wait means equal (histogram sums vs span attribute).
    def per_shard(frame):  # type: ignore[no-untyped-def]
        g = frame.groupby("shard_id")
        return g["queries"].sum().to_dict(), g["pool_wait_mean_ms"].mean().round(3).to_dict()

    q_n, wait_n = per_shard(n.shard_stats(window).data)
    q_p, wait_p = per_shard(p.shard_stats(window).data)
    assert q_n == q_p == w.shard_queries
    assert wait_n == wait_p == {"0": 0.5, "1": 0.5, "2": 30.0, "3": 0.5}

    # Cache: hits and misses equal (spans grouped by app.cache.hit vs the lookup counter).
    c_n = n.cache_stats(window).data[["hits", "misses", "errors"]].sum().to_dict()
    c_p = p.cache_stats(window).data[["hits", "misses", "errors"]].sum().to_dict()
    assert c_n == c_p == {"hits": w.cache_hits, "misses": w.cache_misses, "errors": 0}

    # Self time per operation: over the workload's own span the sample (4 slices of up to 50
    # traces) holds every trace, so the numbers are equal.
    tight = TimeWindow(
        datetime.fromtimestamp(w.start_ns / 1e9 - 1, UTC),
        datetime.fromtimestamp(w.end_ns / 1e9 + 1, UTC),
    )
    ops_n = n.operation_times(tight, SpanFilter(service=SERVICE)).data.set_index("operation")
    ops_p = p.operation_times(tight, SpanFilter(service=SERVICE)).data.set_index("operation")
    assert ops_n["count"].to_dict() == ops_p["count"].to_dict()
    assert ops_n["self_ms"].round(3).to_dict() == ops_p["self_ms"].round(3).to_dict()

    # Slow shard queries vs the rest: both single out app.shard.id=2.
    base, slow = SpanFilter(service=SERVICE, kind="client"), SpanFilter(duration_min_ms=20)
    for frame in (n.compare(window, base, slow).data, p.compare(window, base, slow).data):
        top = frame[frame["key"] == "app.shard.id"].sort_values("lift").iloc[-1]
        assert (top["value"], top["selection_share"]) == ("2", 1.0)

    # A span's percentile among same-operation spans.
    r_n = n.duration_ranks(window, SERVICE, "SELECT items", [3.5, 70.0]).data
    r_p = p.duration_ranks(window, SERVICE, "SELECT items", [3.5, 70.0]).data
    assert r_n["percentile"].round(6).tolist() == r_p["percentile"].round(6).tolist()

    # What Prometheus cannot answer is said, not guessed.
    with pytest.raises(Unavailable, match="Prometheus holds the HTTP server histogram"):
        p.red(window, SpanFilter(kind="client"), "app.shard.id")


def test_logs_by_trace_become_an_escaped_logql_query(both: Both) -> None:
    trace_id = both.work.failed[-1]
    native = both.narrows.logs(LogQuery(window=both.window, trace_id=trace_id))
    assert {r.body for r in native} == {"order failed: shard timed out", "handled POST /orders"}
    recorded = both.scaled.logs(LogQuery(window=both.window, trace_id=trace_id))
    assert [r.severity for r in recorded] == ["ERROR", "INFO"]
    sent = both.loki.queries[-1]
    assert sent["query"] == f'{{service_name=~".+"}} | trace_id="{trace_id}"'
    assert sent["direction"] == "backward"
    assert int(sent["start"]) == both.window.start_ns


def test_hostile_label_values_are_escaped_for_a_real_prometheus(both: Both) -> None:
    hostile = 'x"} or vector(1) or {__name__=~".+'
    filt = SpanFilter(service=hostile, operation=f"GET {hostile}", kind="server")
    assert both.scaled.red(both.window, filt, "span.name").data.empty
    resp = httpx.get(f"{both.prometheus_url}/api/v1/query", params={"query": "vector(1)"})
    assert resp.status_code == 200


@pytest.mark.parametrize(
    "name", ["overview", "latency", "traces", "logs", "shards", "bottlenecks", "capacity"]
)
def test_every_page_renders_on_the_scaled_source(
    both: Both, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pages on `prometheus+jaeger+loki`: no exception, no error; what the backend
    lacks is a note, not a failure."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("NARROWS_SOURCE", "prometheus+jaeger+loki")
    monkeypatch.setenv("NARROWS_PROMETHEUS_URL", both.prometheus_url)
    monkeypatch.setenv("NARROWS_JAEGER_URL", both.scaled.jaeger.base_url)
    monkeypatch.setenv("NARROWS_LOKI_URL", both.loki.url)
    at = AppTest.from_file(str(APP), default_timeout=60)
    if name == "latency":
        at.query_params.update({"service": SERVICE, "route": "GET /search", "min_ms": "50"})
    if name == "traces":
        at.query_params["trace_id"] = both.work.failed[-1]
    at.switch_page(f"pages/{name}.py").run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    if name == "overview":
        routes = next(d.value for d in at.dataframe if "route" in d.value.columns)
        assert dict(zip(routes["route"], routes["requests"], strict=True)) == {
            k: len(v) for k, v in both.work.by_route.items()
        }
    if name == "traces":
        logs = next(d.value for d in at.dataframe if "message" in d.value.columns)
        assert "order failed: shard timed out" in set(logs["message"])  # the Loki recording
