"""The span aggregates answer what a brute-force computation over the same spans says:
RED by group (with the busiest-groups cut), the slowest/most recent traces, and the
selection-vs-baseline comparison, exact below its sampling threshold and close above."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import duckdb
import numpy as np
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.query import aggregates
from collector.query.aggregates import _red
from collector.query.compare import compare
from collector.query.params import Bounds, format_ns
from collector.query.selftime import selected_traces
from tests.support.spanstore import BASE_NS, MINUTE, S, demo_spans, store

BOUNDS = Bounds(max_range_ns=31 * 86400 * 10**9)
RANGE = {"start": format_ns(BASE_NS), "end": format_ns(BASE_NS + 10 * MINUTE)}
NOW = BASE_NS + 10 * MINUTE


@pytest.fixture(scope="module")
def spans() -> list[S]:
    return demo_spans(1500)


@pytest.fixture(scope="module")
def conn(spans: list[S]) -> duckdb.DuckDBPyConnection:
    return store(spans)


def _group_of(s: S, key: str) -> str | None:
    value = s.name if key == "span.name" else s.attrs.get(key)
    if value is None:
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_red_by_a_generic_attribute_matches_the_one_pass_answer_shape(
    conn: duckdb.DuckDBPyConnection, spans: list[S]
) -> None:
    got = _red(conn, {**RANGE, "groupBy": "peer.tier", "step": "10m", "limit": "2"}, BOUNDS, NOW)
    tiers = Counter(_group_of(s, "peer.tier") for s in spans)
    assert [(x["group"], x["count"]) for x in got["series"]] == sorted(
        tiers.items(), key=lambda kv: (-kv[1], kv[0] is None, str(kv[0]))
    )[:2]
    assert got["truncated"] is True


def test_red_points_are_exact_per_group_and_minute(
    conn: duckdb.DuckDBPyConnection, spans: list[S]
) -> None:
    got = _red(
        conn, {**RANGE, "groupBy": "http.route", "kind": "server", "step": "60s"}, BOUNDS, NOW
    )
    servers = [s for s in spans if s.kind == Span.SPAN_KIND_SERVER]
    totals = Counter(_group_of(s, "http.route") for s in servers)
    assert [(x["group"], x["count"]) for x in got["series"]] == sorted(
        totals.items(), key=lambda kv: (-kv[1], kv[0])
    )
    assert got["truncated"] is False
    for series in got["series"]:
        for point in series["points"]:
            in_step = [
                s.duration
                for s in servers
                if _group_of(s, "http.route") == series["group"]
                and point["t_ns"] <= s.start < point["t_ns"] + MINUTE
            ]
            errors = [
                s
                for s in servers
                if s.error
                and _group_of(s, "http.route") == series["group"]
                and point["t_ns"] <= s.start < point["t_ns"] + MINUTE
            ]
            assert point["count"] == len(in_step)
            assert point["errors"] == len(errors)
            want = np.quantile(np.array(in_step, dtype=np.float64), [0.5, 0.9, 0.95, 0.99])
            assert [point["p50_ms"], point["p90_ms"], point["p95_ms"], point["p99_ms"]] == (
                pytest.approx([w / 1e6 for w in want], rel=1e-9)
            )
            assert point["max_ms"] == pytest.approx(max(in_step) / 1e6)


@pytest.mark.parametrize("one_pass", [True, False])
@pytest.mark.parametrize("operation", ["", "SELECT items"])
def test_red_keeps_only_the_busiest_groups(
    conn: duckdb.DuckDBPyConnection, operation: str, one_pass: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not one_pass:  # the path for keys of unknown cardinality: count pass, then quantiles
        monkeypatch.setattr(aggregates, "_FEW_VALUES", set())
    q = {**RANGE, "groupBy": "app.shard.id", "step": "5m", "operation": operation}
    full = _red(conn, q, BOUNDS, NOW)
    has_null = full["series"][0]["group"] is None  # server and cache spans carry no shard
    assert has_null == (not operation)
    for limit in (1, 3):
        cut = _red(conn, {**q, "limit": str(limit)}, BOUNDS, NOW)
        assert cut["truncated"] is True
        assert cut["series"] == full["series"][:limit]


def _reference_traces(spans: list[S], kind: int, order: str, limit: int) -> list[int]:
    best: dict[int, int] = {}
    for s in spans:
        if s.kind == kind:
            key = s.duration if order == "slowest" else s.start
            best[s.trace] = max(best.get(s.trace, key), key)
    return sorted(best, key=lambda t: (-best[t], t))[:limit]


@pytest.mark.parametrize("order", ["slowest", "recent"])
def test_selected_traces_rank_by_their_best_matching_span(
    conn: duckdb.DuckDBPyConnection, spans: list[S], order: str
) -> None:
    q = {**RANGE, "kind": "client", "order": order, "limit": "37"}
    assert selected_traces(conn, q, BOUNDS, NOW) == _reference_traces(
        spans, Span.SPAN_KIND_CLIENT, order, 37
    )


def test_selected_traces_widen_when_the_top_spans_share_few_traces() -> None:
    many = [
        S(t, 1000 * t + c, 0, "SELECT", BASE_NS + c, 900_000_000 + c)
        for t in range(1, 6)
        for c in range(1, 41)
    ]
    few = [S(100 + t, 7, 0, "SELECT", BASE_NS + t, 1_000_000 + t) for t in range(30)]
    conn = store(many + few)
    got = selected_traces(conn, {**RANGE, "limit": "20"}, BOUNDS, NOW)
    assert got == _reference_traces(many + few, Span.SPAN_KIND_CLIENT, "slowest", 20)
    assert len(got) == 20


def _reference_compare(
    spans: list[S], selected: Any, key: str
) -> dict[str | None, tuple[int, int]]:
    out: dict[str | None, list[int]] = {}
    for s in spans:
        if s.kind != Span.SPAN_KIND_CLIENT:
            continue
        counts = out.setdefault(_group_of(s, key), [0, 0])
        counts[0 if selected(s) else 1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def _values(answer: dict[str, Any], key: str) -> dict[str | None, tuple[int, int]]:
    (entry,) = [k for k in answer["keys"] if k["key"] == key]
    return {v["value"]: (v["selection_count"], v["baseline_count"]) for v in entry["values"]}


def test_compare_counts_are_exact_below_the_sampling_threshold(
    conn: duckdb.DuckDBPyConnection, spans: list[S]
) -> None:
    q = {
        **RANGE,
        "kind": "client",
        "selection.durationMin": "100ms",
        "keys": "app.shard.id,span.name,peer.tier",
    }
    got = compare(conn, q, BOUNDS, NOW)
    assert got["selection_sample_rate"] == got["baseline_sample_rate"] == 1.0
    slow = lambda s: s.duration >= 100_000_000  # noqa: E731
    for key in ("app.shard.id", "span.name", "peer.tier"):
        assert _values(got, key) == _reference_compare(spans, slow, key)
    assert got["keys"][0]["key"] == "app.shard.id", "the slow shard is the most different key"


def test_spans_lacking_the_selection_attribute_are_baseline(
    conn: duckdb.DuckDBPyConnection, spans: list[S]
) -> None:
    q = {
        **RANGE,
        "kind": "client",
        "selection.attributes": json.dumps({"peer.tier": "gold"}),
        "keys": "app.shard.id",
    }
    got = compare(conn, q, BOUNDS, NOW)
    clients = [s for s in spans if s.kind == Span.SPAN_KIND_CLIENT]
    gold = sum(1 for s in clients if s.attrs.get("peer.tier") == "gold")
    assert (got["selection_count"], got["baseline_count"]) == (gold, len(clients) - gold)
    per_value = _values(got, "app.shard.id")
    assert sum(s for s, _ in per_value.values()) == gold
    assert sum(b for _, b in per_value.values()) == len(clients) - gold


def test_compare_above_the_threshold_samples_deterministically_and_stays_close(
    conn: duckdb.DuckDBPyConnection, spans: list[S]
) -> None:
    q = {**RANGE, "kind": "client", "selection.durationMin": "100ms", "keys": "app.shard.id"}
    exact = compare(conn, q, BOUNDS, NOW)
    sampled = compare(conn, q, BOUNDS, NOW, sample_rows=600)
    assert compare(conn, q, BOUNDS, NOW, sample_rows=600) == sampled
    assert sampled["baseline_sample_rate"] < 1.0
    assert (sampled["selection_count"], sampled["baseline_count"]) == (
        exact["selection_count"],
        exact["baseline_count"],
    )
    got = _values(sampled, "app.shard.id")
    assert sum(b for _, b in got.values()) == sampled["baseline_count"]
    shares = {v["value"]: v["baseline_share"] for v in sampled["keys"][0]["values"]}
    for v in exact["keys"][0]["values"]:
        assert shares[v["value"]] == pytest.approx(v["baseline_share"], abs=0.06)
    assert sampled["keys"][0]["values"][0]["value"] == exact["keys"][0]["values"][0]["value"]
