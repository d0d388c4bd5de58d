"""Source contract: the `narrows` and `prometheus+jaeger+loki` sources give the same answers
on the same workload of the real demo wherever both can answer.

Real servers: `narrows demo` (its own instrumentation: spans and logs over OTLP, `/metrics`
with exemplars), our collector (receives them, scrapes the demo as under `narrows up`, and
its Jaeger API v3 doubles as the Jaeger of the second source) and a private Prometheus
scraping the demo. Loki answers are recorded (tests/data/loki): only the request built and
the parsing are checked against them. The workload is driven request by request with known
trace ids (tests/support/demo_workload.py), so every count has a ground truth that does
not come from the telemetry under test.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.sources.base import Unavailable
from dashboard.sources.model import Span, Trace
from dashboard.sources.narrows import NarrowsSource
from dashboard.sources.query import LogQuery, SpanFilter, TimeWindow
from dashboard.sources.scaled import PrometheusJaegerLokiSource
from dashboard.sources.shared import pool_wait_from_traces
from narrows.ports import free_port
from tests.conftest import require_program
from tests.support.demo_workload import DemoWorkload, Driver, keys_on
from tests.support.loki_replay import LokiReplay, loki_replay
from tests.support.procs import OwnedProcess, narrows_cmd, wait_for, wait_http
from tests.support.servers import PrometheusServer, prometheus_server
from tests.support.stack import collector_proc, wait_trace

pytestmark = [pytest.mark.integration, pytest.mark.slow]
APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
SERVICE = "narrows-demo"
SHARDS = 4
FAILING, SLOW = 1, 2  # the shards the second phase breaks and slows
SLOW_MS = 40
#: A request's metric duration is measured inside its span (docs/telemetry.md): never
#: longer, and shorter by the span's bookkeeping only.
SPAN_SLACK_MS = 2.0
GETS = "GET /items/{item_id}"
STEP_S = 2
#: Both scrapers every half second, so waiting for a scrape is short (two spellings).
PROMETHEUS_SCRAPE, COLLECTOR_SCRAPE = "500ms", "0.5s"


@dataclass
class Both:
    narrows: NarrowsSource
    scaled: PrometheusJaegerLokiSource
    work: DemoWorkload
    window: TimeWindow
    traces: dict[str, Trace]
    loki: LokiReplay
    prometheus_url: str
    warmup: DemoWorkload


def _collector_total(source: NarrowsSource, name: str, since: datetime) -> float:
    """The newest scraped value of a counter, summed over its series (0 before a scrape)."""
    window = TimeWindow(since, datetime.now(UTC) + timedelta(seconds=1))
    raw = source.metric_series(name, {}, window, "raw").data
    if raw.empty:
        return 0.0
    labels = [c for c in raw.columns if c not in ("ts", "value")]
    return float(raw.sort_values("ts").groupby(labels)["value"].last().sum())


def _prometheus_total(prom: PrometheusServer, name: str) -> float:
    result = prom.query(f"sum({name})")
    return float(result[0]["value"][1]) if result else 0.0  # type: ignore[index]


def _wait_scraped(
    narrows: NarrowsSource, prom: PrometheusServer, requests: int, since: datetime
) -> None:
    """Both scrapers hold the demo's counters after ``requests`` requests."""
    name = "http_server_request_duration_seconds_count"
    wait_for(
        lambda: (
            _prometheus_total(prom, name) == requests
            and _collector_total(narrows, name, since) == requests
        ),
        20,
        f"Prometheus and the collector to scrape {requests} requests",
    )


def _drive(driver: Driver, demo_url: str) -> None:
    """Phase 1 healthy: reads that miss then hit, a not-found, searches, orders and an order
    read. Phase 2: shard 1 fails every query and shard 2 answers 40 ms late."""
    for key in [k for s in range(SHARDS) for k in keys_on(s, SHARDS, 2, 1)]:
        assert driver.get(key) == 200
        assert driver.get(key) == 200
    assert driver.get(100_000) == 404  # past the seeded items: a miss and a query, no error
    for q in ("harbour", "river", "brass"):
        assert driver.search(q) == 200
    orders = [driver.order(k) for k in (101, 102, 103)]
    assert all(orders)
    assert driver.read_order(orders[0]) == 200
    faults = f"{demo_url}/admin/faults"
    for name, params in (
        ("failing_shard", {"shard": FAILING, "error_rate": 1.0}),
        ("slow_shard", {"shard": SLOW, "delay_ms": SLOW_MS}),
    ):
        httpx.put(f"{faults}/{name}", json=params, timeout=5).raise_for_status()
    try:
        for key in keys_on(FAILING, SHARDS, 3, 150):
            assert driver.get(key) == 503
        for key in keys_on(SLOW, SHARDS, 3, 150) + keys_on(0, SHARDS, 1, 150):
            assert driver.get(key) == 200
    finally:
        httpx.delete(faults, timeout=5).raise_for_status()


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    require_program("prometheus")
    tmp = tmp_path_factory.mktemp("sources")
    port = free_port()
    demo_url = f"http://127.0.0.1:{port}"
    with ExitStack() as stack:
        collector_port = free_port()
        # The demo boots while the collector and Prometheus start; it retries its exports.
        demo = OwnedProcess.start(
            "demo",
            narrows_cmd(
                "demo",
                "--demo-port",
                str(port),
                "--data-dir",
                str(tmp / "demo"),
                "--seed-items",
                "200",
                "--shards",
                str(SHARDS),
            ),
            tmp / "logs",
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector_port}",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_BSP_SCHEDULE_DELAY": "200",
                "OTEL_BLRP_SCHEDULE_DELAY": "200",
                "NARROWS_ACCESS_LOG": "true",
            },
        )
        stack.callback(demo.stop)
        col = stack.enter_context(
            collector_proc(
                tmp / "collector",
                "--scrape",
                f"{demo_url}/metrics,{COLLECTOR_SCRAPE}",
                otlp_port=collector_port,
            )
        )
        prom = stack.enter_context(
            prometheus_server(tmp / "prometheus", [f"127.0.0.1:{port}"], PROMETHEUS_SCRAPE)
        )
        loki = stack.enter_context(loki_replay())
        wait_http(f"{demo_url}/healthz", 60, demo)
        narrows = NarrowsSource(col.query_url)
        client = stack.enter_context(httpx.Client(base_url=demo_url, timeout=10))
        began = datetime.now(UTC)
        # Warm-up outside the window: every shard's series exists before it starts, so a
        # counter's first in-window sample is a baseline on both scrapers.
        warm = Driver(client)
        warm.search("harbour")
        warm.get(199)
        _wait_scraped(narrows, prom, 2, began)
        start = datetime.now(UTC)
        wait_for(
            lambda: _collector_total(narrows, "app_shard_pool_wait_seconds_count", start) > 0,
            10,
            "the collector's first scrape inside the window",
        )
        driver = Driver(client)
        _drive(driver, demo_url)
        work = driver.work
        _wait_scraped(narrows, prom, 2 + len(work.trace_ids), began)
        wait_trace(col.query_url, work.trace_ids[-1], timeout=20)  # exported in order
        traces: dict[str, Trace] = {}

        def stored() -> bool:
            for trace_id in [t for t in work.trace_ids if t not in traces]:
                found = narrows.get_trace(trace_id)
                if found is None:
                    return False
                traces[trace_id] = found
            return True

        wait_for(stored, 20, "every trace of the workload")

        def logged() -> bool:
            logs = narrows.logs(LogQuery(window=TimeWindow.last(5), limit=1000))
            return len({r.trace_id for r in logs} & set(work.trace_ids)) == len(work.trace_ids)

        wait_for(logged, 20, "an access log line of every request")
        yield Both(
            narrows,
            PrometheusJaegerLokiSource(prom.url, col.query_url, loki.url),
            work,
            _aligned(start, STEP_S),
            traces,
            loki,
            prom.url,
            warm.work,
        )


def _aligned(start: datetime, step_s: int) -> TimeWindow:
    """From ``start`` to a little past now in whole steps: the range queries' grid then
    begins exactly at ``start`` (whose samples hold the warm-up) on both sources."""
    seconds = (datetime.now(UTC) - start).total_seconds() + 1
    steps = math.ceil(seconds / step_s)
    return TimeWindow(start, start + timedelta(seconds=steps * step_s), step_s=step_s)


def _totals(frame: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """group → (requests, errors) over the whole window."""
    g = frame.groupby("group")[["count", "errors"]].sum()
    return {str(k): (int(r["count"]), int(r["errors"])) for k, r in g.iterrows()}


def _server(trace: Trace) -> float:
    (root,) = [s for s in trace.spans if s.kind == 2]
    return root.duration_ms


def _shard_spans(traces: dict[str, Trace]) -> list[Span]:
    return [s for t in traces.values() for s in t.spans if "app.shard.id" in s.attributes]


def test_request_and_error_totals_per_route_agree(both: Both) -> None:
    n, p, w, window = both.narrows, both.scaled, both.work, both.window
    assert n.services() == p.services() == [SERVICE]
    server = SpanFilter(service=SERVICE, kind="server")
    red_n = _totals(n.red(window, server, "span.name").data)
    red_p = _totals(p.red(window, server, "span.name").data)
    expected = {r: (len(ids), w.errors_by_route()[r]) for r, ids in w.by_route.items()}
    assert red_n == red_p == expected
    assert expected[GETS][1] == 3  # the failing shard's reads; the 404 is no error


def test_latency_histograms_agree_up_to_the_spans_own_overhead(both: Both) -> None:
    """The metric observes the duration inside the span: at every bound, the histogram
    counts at least the spans at or below it and at most those within the slack above."""
    n, p, window = both.narrows, both.scaled, both.window
    route = SpanFilter(service=SERVICE, operation=GETS, kind="server")
    h_n, h_p = n.latency(window, route, over_time=False), p.latency(window, route, over_time=False)
    cum_n = dict(zip(h_n.bounds_ms, h_n.totals().cumsum(), strict=False))
    cum_p = dict(zip(h_p.bounds_ms, h_p.totals().cumsum(), strict=False))
    spans = [_server(both.traces[t]) for t in both.work.by_route[GETS]]
    assert int(h_n.totals().sum()) == int(h_p.totals().sum()) == len(spans)
    common = sorted(set(cum_n) & set(cum_p))
    assert len(common) >= 10
    for bound in common:
        assert cum_n[bound] == sum(d <= bound for d in spans)
        assert cum_n[bound] <= cum_p[bound] <= sum(d <= bound + SPAN_SLACK_MS for d in spans)


def test_exemplars_point_at_stored_traces_with_their_durations(both: Both) -> None:
    for source in (both.scaled, both.narrows):
        exemplars = source.exemplars(both.window, "http_server_request_duration_seconds", {})
        ours = [e for e in exemplars if e.trace_id in both.traces]
        assert ours, source.kind
        for e in ours:
            span_ms = _server(both.traces[e.trace_id])
            assert 0 <= span_ms - e.value * 1000 < SPAN_SLACK_MS, (source.kind, e)


def test_shard_queries_errors_and_pool_wait_agree(both: Both) -> None:
    """Per shard: queries and errors from spans (`narrows`) and from the app's histogram
    (Prometheus) equal the shard spans of the fetched traces; pool wait from the scraped
    histogram on both equals the spans' `app.pool.wait_ms`."""
    n, p, window = both.narrows, both.scaled, both.window
    spans = _shard_spans(both.traces)
    queries: dict[str, int] = {}
    errors: dict[str, int] = {}
    for s in spans:
        shard = str(s.attributes["app.shard.id"])
        queries[shard] = queries.get(shard, 0) + 1
        errors[shard] = errors.get(shard, 0) + (s.status_code == 2)
    assert errors == {"0": 0, "1": 3, "2": 0, "3": 0}
    for source in (n, p):
        frame = source.shard_stats(window)
        assert frame.note is None, (source.kind, frame.note)  # nothing estimated
        g = frame.data.groupby("shard_id")[["queries", "errors"]].sum()
        assert g["queries"].to_dict() == queries, source.kind
        assert g["errors"].to_dict() == errors, source.kind
    # Pool wait over the whole window in one step: total wait / queries on every side.
    whole = _aligned(window.start, math.ceil(window.seconds))
    from_spans = pool_wait_from_traces(list(both.traces.values()), whole)
    expected = from_spans.set_index("shard_id")["pool_wait_mean_ms"]
    for source in (n, p):
        got = source.shard_stats(whole).data.set_index("shard_id")["pool_wait_mean_ms"]
        assert got.to_dict() == pytest.approx(expected.to_dict(), rel=1e-9, abs=1e-9)


def test_cache_hits_and_misses_agree(both: Both) -> None:
    w = both.work
    expected = {"hits": w.cache_hits, "misses": w.cache_misses, "errors": 0}
    for source in (both.narrows, both.scaled):
        got = source.cache_stats(both.window).data[["hits", "misses", "errors"]].sum().to_dict()
        assert got == expected, source.kind


def test_trace_computed_answers_agree(both: Both) -> None:
    """What Prometheus cannot aggregate, the scaled source computes from Jaeger's traces: self
    time per operation, the slow shard singled out, a span's percentile — over this short
    window its sample holds every trace, so the numbers equal the collector's."""
    n, p, window = both.narrows, both.scaled, both.window
    ops_n = n.operation_times(window, SpanFilter(service=SERVICE)).data.set_index("operation")
    ops_p = p.operation_times(window, SpanFilter(service=SERVICE)).data.set_index("operation")
    assert ops_n["count"].to_dict() == ops_p["count"].to_dict()
    assert ops_n["self_ms"].round(3).to_dict() == ops_p["self_ms"].round(3).to_dict()

    base, slow = SpanFilter(service=SERVICE, kind="client"), SpanFilter(duration_min_ms=SLOW_MS)
    tops = []
    for frame in (n.compare(window, base, slow).data, p.compare(window, base, slow).data):
        top = frame[frame["key"] == "app.shard.id"].sort_values("lift").iloc[-1]
        assert top["value"] == str(SLOW)
        # Every span of the slowed shard is in the selection; on a loaded machine a queued
        # query on another shard can pass the threshold too, so the share is not always 1.
        assert top["selection_share"] > 0.25  # above the fair share of one of four shards
        tops.append((top["selection_share"], top["baseline_share"]))
    assert tops[0] == pytest.approx(tops[1])

    r_n = n.duration_ranks(window, SERVICE, "SELECT items", [0.5, float(SLOW_MS)]).data
    r_p = p.duration_ranks(window, SERVICE, "SELECT items", [0.5, float(SLOW_MS)]).data
    assert r_n["percentile"].round(6).tolist() == r_p["percentile"].round(6).tolist()

    with pytest.raises(Unavailable, match="Prometheus holds the HTTP server histogram"):
        p.red(window, SpanFilter(kind="client"), "app.shard.id")


def test_logs_by_trace_become_an_escaped_logql_query(both: Both) -> None:
    trace_id = both.work.failed[-1]
    native = both.narrows.logs(LogQuery(window=both.window, trace_id=trace_id))
    assert {r.severity for r in native} == {"WARN", "INFO"}  # the 503's warning, the access line
    assert any(r.body.startswith(f"shard {FAILING} unavailable") for r in native)
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
    "name",
    ["overview", "latency", "traces", "logs", "service_map", "shards", "bottlenecks", "capacity"],
)
def test_every_page_renders_on_the_scaled_source(
    both: Both, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pages on `prometheus+jaeger+loki`: no exception, no error; what the backend
    lacks is a note, not a failure."""
    monkeypatch.setenv("NARROWS_SOURCE", "prometheus+jaeger+loki")
    monkeypatch.setenv("NARROWS_PROMETHEUS_URL", both.prometheus_url)
    monkeypatch.setenv("NARROWS_JAEGER_URL", both.scaled.jaeger.base_url)
    monkeypatch.setenv("NARROWS_LOKI_URL", both.loki.url)
    at = AppTest.from_file(str(APP), default_timeout=60)
    if name == "latency":
        at.query_params.update({"service": SERVICE, "route": "GET /search", "min_ms": "1"})
    if name == "traces":
        at.query_params["trace_id"] = both.work.failed[-1]
    at.switch_page(f"pages/{name}.py").run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    if name == "overview":
        routes = next(d.value for d in at.dataframe if "route" in d.value.columns)
        expected = {k: len(v) for k, v in both.work.by_route.items()}
        for route, ids in both.warmup.by_route.items():  # the page's window holds the warm-up
            expected[route] += len(ids)
        assert dict(zip(routes["route"], routes["requests"], strict=True)) == expected
    if name == "shards":
        shards = next(d.value for d in at.dataframe if "shard_id" in d.value.columns)
        assert shards.set_index("shard_id").loc[str(FAILING), "errors"] == 3
    if name == "traces":
        logs = next(d.value for d in at.dataframe if "message" in d.value.columns)
        assert "order failed: shard timed out" in set(logs["message"])  # the Loki recording


def _diagnose(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        narrows_cmd("diagnose", "--since", "2m", "--json", *args),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_narrows_diagnose_runs_on_both_sources_and_finds_the_failing_shard(both: Both) -> None:
    """The CLI on each backend: exit 0, JSON only on stdout, and the shard the workload broke
    among the failing_shard findings of both (its errors come from the metrics on one side,
    from the collector's spans on the other)."""
    runs = {
        "narrows": _diagnose("--query-url", both.narrows.base_url),
        "prometheus+jaeger+loki": _diagnose(
            "--source",
            "prometheus+jaeger+loki",
            "--prometheus-url",
            both.prometheus_url,
            "--jaeger-url",
            both.scaled.jaeger.base_url,
        ),
    }
    for name, result in runs.items():
        assert result.returncode == 0, f"{name}: {result.stderr}"
        assert "failed on this data" not in result.stderr, result.stderr
        findings = json.loads(result.stdout)
        failing = {
            f["subject"].get("app.shard.id") for f in findings if f["kind"] == "failing_shard"
        }
        assert str(FAILING) in failing, f"{name}: {[(f['kind'], f['subject']) for f in findings]}"
    assert both.prometheus_url in runs["prometheus+jaeger+loki"].stderr
