"""Every dashboard page (Streamlit AppTest, through the real app and navigation) against a
live collector fed with a known workload: no exception, the expected elements and values."""

from __future__ import annotations

import json

import pytest

from tests.e2e.dashboard.conftest import BIG_SPANS, Fed, page, table
from tests.support.dashboard import SERVICE

pytestmark = pytest.mark.e2e


def _texts(at) -> str:  # type: ignore[no-untyped-def]
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    return "\n".join(parts)


def test_overview_shows_each_routes_totals_slo_lines_and_freshness(
    fed: Fed, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = page("overview", fed.collector.query_url, monkeypatch).run()
    assert not at.exception
    assert at.title[0].value == "Overview"
    routes = table(at, "route", "requests").set_index("route")
    for route, ids in fed.work.by_route.items():
        assert routes.loc[route, "requests"] == len(ids)
    orders = len(fed.work.by_route["POST /orders"])
    assert routes.loc["POST /orders", "error_pct"] == pytest.approx(
        100 * len(fed.work.failed) / orders, abs=0.01
    )
    charts = {c.proto.id for c in at.get("plotly_chart")}
    assert len(charts) == 3
    latency = json.loads(at.get("plotly_chart")[2].proto.spec)
    assert any("SLO" in str(a.get("text")) for a in latency["layout"].get("annotations", []))
    fresh = {m.label: m.value for m in at.metric}
    assert fresh["Newest traces"].endswith("ago")
    assert fresh["Newest logs"].endswith("ago")


def test_overview_lists_the_slow_shard_among_top_findings(
    fed: Fed, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = page("overview", fed.collector.query_url, monkeypatch).run()
    assert not at.exception
    assert "app.shard.id=2" in _texts(at)


def test_latency_page_selects_slow_requests_and_breaks_them_down_by_shard(
    fed: Fed, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = page(
        "latency",
        fed.collector.query_url,
        monkeypatch,
        service=SERVICE,
        route="GET /items/{item_id}",
        min_ms="50",
    ).run()
    assert not at.exception
    assert at.get("plotly_chart")  # the heatmap
    slow = table(at, "trace", "spans")
    # Only cache misses on the slow shard (item ids ≡ 2 mod 4 → i % 4 == 2) exceed 50 ms.
    expected = {
        tid for tid in fed.work.by_route["GET /items/{item_id}"] if fed.work.durations_ms[tid] > 50
    }
    shown = {link.split("=")[1] for link in slow["trace"]}
    assert shown == expected
    shards = table(at, "shard", "requests")
    assert list(shards["shard"]) == ["2"]
    compare = table(at, "key", "lift")
    assert not compare.empty


def test_traces_search_lists_recent_traces_with_a_scatter(
    fed: Fed, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = page("traces", fed.collector.query_url, monkeypatch, service=SERVICE).run()
    assert not at.exception
    assert at.get("plotly_chart")
    listed = {link.split("=")[1] for link in table(at, "trace", "root")["trace"]}
    assert fed.work.failed[-1] in listed


def test_trace_deep_link_shows_waterfall_self_time_percentiles_and_logs(
    fed: Fed, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace_id = fed.work.failed[-1]
    at = page("traces", fed.collector.query_url, monkeypatch, trace_id=trace_id).run()
    assert not at.exception
    assert at.subheader[0].value == f"Trace {trace_id}"
    waterfall = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len(waterfall["data"][0]["y"]) == 3  # POST /orders + two INSERTs
    spans = table(at, "critical_ms", "self_ms").set_index("operation")
    server = spans.loc["POST /orders"]
    assert server["status"] == "ERROR"
    assert server["duration_ms"] == pytest.approx(fed.work.durations_ms[trace_id], abs=0.01)
    assert spans["critical_ms"].sum() == pytest.approx(server["duration_ms"], abs=0.01)
    assert spans["percentile"].notna().all()
    logs = table(at, "message", "level")
    assert "order failed: shard timed out" in set(logs["message"])
    assert set(logs["level"]) == {"INFO", "ERROR"}


@pytest.mark.parametrize(
    ("trace_id", "expected"),
    [
        ("not-hex", "is not a trace id"),
        ("0af7651916cd43dd8448eb211c80319c' OR 1=1", "is not a trace id"),
        ("ab" * 16, "was not found"),
    ],
)
def test_a_bad_or_unknown_trace_id_is_a_friendly_message(
    fed: Fed, monkeypatch: pytest.MonkeyPatch, trace_id: str, expected: str
) -> None:
    at = page("traces", fed.collector.query_url, monkeypatch, trace_id=trace_id).run()
    assert not at.exception
    shown = [e.value for e in at.error] + [w.value for w in at.warning]
    assert any(expected in s for s in shown)


@pytest.mark.parametrize("which", ["zipkin", "big"])
def test_large_traces_render_capped_with_a_note(
    fed: Fed, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    trace_id = fed.zipkin_trace if which == "zipkin" else fed.big_trace
    at = page("traces", fed.collector.query_url, monkeypatch, trace_id=trace_id)
    at.default_timeout = 120
    at.run()
    assert not at.exception
    assert any("waterfall shows the first 500" in i.value for i in at.info)
    waterfall = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len(waterfall["data"][0]["y"]) == 500
    spans = table(at, "critical_ms", "self_ms")
    assert len(spans) == (BIG_SPANS if which == "big" else 1041)


def test_logs_page_filters_by_level_and_links_each_line_to_its_trace(
    fed: Fed, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = page("logs", fed.collector.query_url, monkeypatch, level="error").run()
    assert not at.exception
    logs = table(at, "message", "level")
    assert len(logs) == len(fed.work.failed)
    assert set(logs["level"]) == {"ERROR"}
    assert {link.split("=")[1] for link in logs["trace"]} == set(fed.work.failed)


def test_shards_page_shows_load_share_latency_pool_wait_and_cache(
    fed: Fed, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = page("shards", fed.collector.query_url, monkeypatch).run()
    assert not at.exception
    shard_rows = table(at, "shard_id", "load_share_pct").set_index("shard_id")
    assert shard_rows["queries"].to_dict() == fed.work.shard_queries
    assert shard_rows["p95_ms"].idxmax() == fed.work.slow_shard
    assert shard_rows.loc["2", "pool_wait_mean_ms"] == pytest.approx(30.0, abs=0.01)
    assert shard_rows.loc["0", "pool_wait_mean_ms"] == pytest.approx(0.5, abs=0.01)
    ratio = fed.work.cache_hits / (fed.work.cache_hits + fed.work.cache_misses)
    assert {m.label: m.value for m in at.metric}["Hit ratio over the window"] == f"{ratio:.1%}"
    outcomes = table(at, "cache", "requests").set_index("cache")
    assert outcomes.loc["miss", "p50_ms"] > outcomes.loc["hit", "p50_ms"]


def test_bottlenecks_page_puts_the_slow_shard_first_with_evidence(
    fed: Fed, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = page("bottlenecks", fed.collector.query_url, monkeypatch).run()
    assert not at.exception
    first_card = at.markdown[0].value
    assert "app.shard.id=2" in first_card
    assert "traces?trace_id=" in _texts(at)
    # Evidence as charts: per-shard bars with the finding's shard highlighted.
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    highlighted = [
        c for c in charts if "#E69F00" in (c["data"][0].get("marker", {}).get("color") or [])
    ]
    assert highlighted
    ops = table(at, "operation", "self_share")
    assert {"GET /items/{item_id}", "GET /search", "POST /orders"} <= set(ops["operation"])


def _sweep() -> bytes:
    """A load report whose throughput follows the USL with σ=0.05, κ=0.001, λ=100."""
    steps = []
    for n in (1, 2, 4, 8, 16, 32):
        x = 100 * n / (1 + 0.05 * (n - 1) + 0.001 * n * (n - 1))
        p50 = 1000 * n / x
        steps.append(
            {
                "concurrency": n,
                "throughput_rps": x,
                "error_rate": 0.0,
                "latency_ms": {"p50": p50, "p95": 1.5 * p50, "p99": 2 * p50},
            }
        )
    return json.dumps({"mode": "closed", "steps": steps}).encode()


def test_capacity_page_fits_the_usl_to_an_uploaded_sweep(
    fed: Fed, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = page("capacity", fed.collector.query_url, monkeypatch).run()
    assert not at.exception
    assert any("Upload a sweep" in c.value for c in at.caption)
    at.get("file_uploader")[0].set_value(("sweep.json", _sweep(), "application/json"))
    at.number_input(key="target").set_value(2000.0)
    at.run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Peak concurrency"] == "30.8"  # √((1 − σ)/κ)
    assert int(metrics["Replicas for target"]) >= 2
    assert any("σ (contention) = 0.0500" in c.value for c in at.caption)


def test_a_trace_link_to_the_root_opens_the_traces_page(
    fed: Fed, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.e2e.dashboard.conftest import APP

    monkeypatch.setenv("NARROWS_QUERY_URL", fed.collector.query_url)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["trace_id"] = fed.work.failed[0]
    at.run()
    assert not at.exception
    assert at.subheader[0].value == f"Trace {fed.work.failed[0]}"
