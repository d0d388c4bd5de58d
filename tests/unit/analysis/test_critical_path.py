"""Critical path and self-time: the last-finishing-child walk on tidy and untidy traces."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.analysis.critical_path import (
    critical_path,
    critical_time_by_span,
    self_times,
    span_tree,
)
from dashboard.sources.model import Trace
from tests.unit.analysis.helpers import MS, span, trace, zipkin_trace


def path_of(t: Trace) -> list[tuple[str, float, float]]:
    return [(g.span.name, g.start_ns / MS, g.end_ns / MS) for g in critical_path(t)]


def test_sequential_children_are_all_on_the_path_with_the_gaps_in_the_parent() -> None:
    t = trace(span("root", 0, 100, sid="r"), span("a", 10, 40, "r"), span("b", 50, 90, "r"))
    assert path_of(t) == [
        ("root", 0, 10),
        ("a", 10, 40),
        ("root", 40, 50),
        ("b", 50, 90),
        ("root", 90, 100),
    ]


def test_a_parallel_child_that_finished_earlier_is_off_the_path() -> None:
    t = trace(span("root", 0, 100, sid="r"), span("long", 5, 95, "r"), span("short", 5, 60, "r"))
    assert [name for name, _, _ in path_of(t)] == ["root", "long", "root"]
    assert critical_time_by_span(t).get(t.spans[2].span_id, 0.0) == 0.0


def test_an_overlapping_earlier_child_does_not_return_to_the_path() -> None:
    """b finished last; a started before b and ended after b started, so the parent was
    never waiting on a alone."""
    t = trace(span("root", 0, 100, sid="r"), span("a", 10, 60, "r"), span("b", 40, 90, "r"))
    assert path_of(t) == [("root", 0, 40), ("b", 40, 90), ("root", 90, 100)]


def test_the_path_descends_into_grandchildren() -> None:
    t = trace(
        span("root", 0, 100, sid="r"),
        span("child", 10, 90, "r", sid="c"),
        span("grandchild", 20, 80, "c"),
    )
    cp = critical_time_by_span(t)
    assert cp == pytest.approx({"r": 20.0, "c": 20.0, t.spans[2].span_id: 60.0})


def test_self_time_is_duration_minus_the_union_of_children() -> None:
    t = trace(
        span("root", 0, 100, sid="r"),
        span("a", 10, 50, "r"),
        span("b", 30, 70, "r"),  # overlaps a: the union is 10..70
    )
    assert self_times(t)["r"] == pytest.approx(40.0)


def test_a_child_from_another_service_outside_its_parent_is_shifted_in_as_clock_skew() -> None:
    t = trace(
        span("client", 0, 100, sid="r", service="front"),
        span("server", 150, 230, "r", sid="s", service="back"),  # 80 ms, skewed +150
        span("query", 160, 200, "s", service="back"),
    )
    tree = span_tree(t)
    moved = tree.spans["s"]
    assert (moved.start_ns / MS, moved.end_ns / MS) == (10, 90)  # centred in the parent
    query = next(s for s in tree.spans.values() if s.name == "query")
    assert (query.start_ns / MS, query.end_ns / MS) == (20, 60)  # moved with its parent
    assert tree.adjusted == 2
    assert sum(g.duration_ms for g in critical_path(tree)) == pytest.approx(100.0)


def test_a_same_service_child_overhanging_its_parent_is_clipped() -> None:
    t = trace(span("root", 0, 100, sid="r"), span("late", 80, 130, "r", sid="l"))
    tree = span_tree(t)
    assert tree.spans["l"].end_ns == 100 * MS
    assert path_of(t)[-1] == ("late", 80, 100)


def test_a_same_service_child_entirely_outside_its_parent_is_dropped() -> None:
    t = trace(span("root", 0, 100, sid="r"), span("after", 150, 160, "r", sid="x"))
    tree = span_tree(t)
    assert "x" not in tree.spans
    assert tree.dropped == 1
    assert path_of(t) == [("root", 0, 100)]


def test_a_span_whose_parent_is_missing_still_counts_under_the_root() -> None:
    t = trace(span("root", 0, 100, sid="r"), span("orphan", 20, 90, "never-sent", sid="o"))
    tree = span_tree(t)
    assert tree.root.span_id == "r"
    assert tree.orphans == 1
    assert critical_time_by_span(t)["o"] == pytest.approx(70.0)


def test_without_a_root_span_the_longest_orphan_is_the_root() -> None:
    t = trace(span("a", 0, 50, "gone", sid="a"), span("b", 10, 100, "gone", sid="b"))
    assert span_tree(t).root.span_id == "b"


def test_duplicated_span_ids_and_parent_cycles_do_not_hang_or_crash() -> None:
    t = trace(
        span("root", 0, 100, sid="r"),
        span("x", 10, 20, "y", sid="x"),
        span("y", 30, 40, "x", sid="y"),  # x ↔ y: a cycle, unreachable from the root
        span("dup", 50, 60, "r", sid="r"),  # same id as the root
    )
    segments = critical_path(t)
    assert sum(g.duration_ms for g in segments) == pytest.approx(100.0)


def test_zero_length_children_do_not_stall_the_walk() -> None:
    t = trace(span("root", 0, 10, sid="r"), *[span(f"z{i}", 5, 5, "r") for i in range(5)])
    assert sum(g.duration_ms for g in critical_path(t)) == pytest.approx(10.0)


def test_a_ten_thousand_span_chain_needs_no_recursion() -> None:
    spans = [span("s0", 0, 20_000, sid="s0")]
    spans += [span(f"s{i}", i, 20_000 - i, f"s{i - 1}", sid=f"s{i}") for i in range(1, 10_000)]
    segments = critical_path(trace(*spans))
    assert sum(g.duration_ms for g in segments) == pytest.approx(20_000.0)


def test_the_real_zipkin_skew_trace_gets_a_complete_path(fixtures_dir: Path) -> None:
    t = zipkin_trace(fixtures_dir, "skew.json")
    tree = span_tree(t)
    assert tree.adjusted >= 1
    assert tree.dropped == 0
    segments = critical_path(tree)
    assert sum(g.duration_ms for g in segments) == pytest.approx(tree.root.duration_ms)
    assert {g.span.service for g in segments} == {"servicea", "serviceb"}


def test_a_large_real_trace_gets_a_path_as_long_as_its_root(fixtures_dir: Path) -> None:
    t = zipkin_trace(fixtures_dir, "smartthings-oauth-authorization.json")
    tree = span_tree(t)
    segments = critical_path(tree)
    assert sum(g.duration_ms for g in segments) == pytest.approx(tree.root.duration_ms, rel=1e-6)


@st.composite
def random_trees(draw: st.DrawFn) -> Trace:
    n = draw(st.integers(1, 40))
    spans = [span("s0", 0, draw(st.integers(1, 1000)), sid="s0")]
    for i in range(1, n):
        parent = draw(st.sampled_from(spans))
        lo, hi = parent.start_ns // MS - 50, parent.end_ns // MS + 50  # skew and overhang too
        a, b = sorted((draw(st.integers(lo, hi)), draw(st.integers(lo, hi))))
        service = draw(st.sampled_from(["demo", "other"]))
        pid = parent.span_id if draw(st.booleans()) or i < 3 else "missing"
        spans.append(span(f"s{i}", a, b, pid, sid=f"s{i}", service=service))
    return trace(*spans)


@settings(max_examples=60, deadline=None)
@given(random_trees())
def test_any_tree_gets_disjoint_segments_covering_the_root_exactly(t: Trace) -> None:
    tree = span_tree(t)
    segments = critical_path(tree)
    total = sum(g.end_ns - g.start_ns for g in segments)
    assert total == tree.root.end_ns - tree.root.start_ns
    for a, b in itertools.pairwise(segments):
        assert a.end_ns <= b.start_ns
    for g in segments:
        s = tree.spans[g.span.span_id]
        assert s.start_ns <= g.start_ns <= g.end_ns <= s.end_ns
    assert all(v >= 0 for v in self_times(tree).values())
