"""Answers computed from sampled traces match the collector's definitions."""

from __future__ import annotations

import pytest

from dashboard.sources.model import Span, Trace
from dashboard.sources.query import SpanFilter
from dashboard.sources.sampled import compare_spans, duration_ranks, operation_times

MS = 1_000_000


def _span(sid: str, parent: str, name: str, start: float, end: float, **attrs: object) -> Span:
    return Span("a" * 32, sid, parent, "svc", name, 3 if parent else 2, int(start * MS),
                int(end * MS), 2 if attrs.pop("error", False) else 0, dict(attrs))  # fmt: skip


def test_self_time_subtracts_the_union_of_parallel_children_once() -> None:
    trace = Trace(
        "a" * 32,
        [
            _span("r", "", "GET /search", 0, 100),
            _span("c1", "r", "SELECT items", 10, 60),
            _span("c2", "r", "SELECT items", 20, 70),  # overlaps c1: covered 10–70
        ],
    )
    ops = operation_times([trace]).set_index("operation")
    assert ops.loc["GET /search", "self_ms"] == pytest.approx(40.0)
    assert ops.loc["SELECT items", "count"] == 2
    assert ops["self_share"].sum() == pytest.approx(1.0)


def test_compare_finds_the_attribute_that_separates_slow_spans() -> None:
    spans = [_span("r", "", "GET /x", 0, 100)]
    for i in range(8):
        shard = "2" if i < 4 else str(i % 2)
        length = 50 if shard == "2" else 5
        spans.append(_span(f"s{i}", "r", "SELECT items", i, i + length, **{"app.shard.id": shard}))
    frame = compare_spans(
        [Trace("a" * 32, spans)], SpanFilter(kind="client"), SpanFilter(duration_min_ms=20)
    )
    top = frame.iloc[0]
    assert top["key"] == "app.shard.id"
    assert top["score"] == pytest.approx(1.0)
    shard2 = frame[(frame["key"] == "app.shard.id") & (frame["value"] == "2")].iloc[0]
    assert shard2["selection_share"] == 1.0
    assert shard2["baseline_share"] == 0.0


def test_duration_ranks_count_at_or_below() -> None:
    spans = [_span(f"s{i}", "", "op", 0, d) for i, d in enumerate([1, 2, 3, 4])]
    ranks = duration_ranks([Trace("a" * 32, spans)], "svc", "op", [2, 4, 0.5])
    assert list(ranks["percentile"]) == [50.0, 100.0, 0.0]
    assert set(ranks["population"]) == {4}
