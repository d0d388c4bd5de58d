"""The waterfall orders spans depth-first and caps huge traces."""

from __future__ import annotations

import json
from pathlib import Path

from dashboard.components.waterfall import MAX_SPANS, ordered_spans, waterfall_figure
from dashboard.sources.model import Span, Trace, parse_otlp_traces


def _span(sid: str, parent: str, start: int, end: int) -> Span:
    return Span("t" * 32, sid, parent, "svc", f"op-{sid}", 1, start, end, 0)


def test_children_follow_their_parent_in_start_order() -> None:
    trace = Trace(
        "t" * 32,
        [
            _span("c2", "root", 50, 60),
            _span("root", "", 0, 100),
            _span("c1", "root", 10, 20),
            _span("g1", "c1", 11, 12),
        ],
    )
    order = [(trace.spans[i].span_id, depth) for i, depth in ordered_spans(trace)]
    assert order == [("root", 0), ("c1", 1), ("g1", 2), ("c2", 1)]


def test_orphans_and_self_parents_are_roots_not_lost() -> None:
    trace = Trace("t" * 32, [_span("a", "missing", 0, 5), _span("b", "b", 1, 2)])
    assert sorted(trace.spans[i].span_id for i, _ in ordered_spans(trace)) == ["a", "b"]


def test_large_trace_is_capped() -> None:
    spans = [_span("root", "", 0, 10_000)] + [
        _span(f"s{i}", "root", i, i + 1) for i in range(MAX_SPANS + 100)
    ]
    fig = waterfall_figure(Trace("t" * 32, spans))
    assert len(fig.data[0].y) == MAX_SPANS


def test_parses_the_jaeger_v3_get_trace_snapshot(fixtures_dir: Path) -> None:
    doc = json.loads((fixtures_dir / "jaeger/api-v3/GetTrace.json").read_text())
    (trace,) = parse_otlp_traces(doc["result"])
    assert trace.trace_id == "00000000000000000000000000000001"
    assert trace.spans[0].name == "foobar"
    assert trace.spans[0].status_code == 2
