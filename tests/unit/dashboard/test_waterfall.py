"""The waterfall orders spans depth-first and caps huge traces."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from dashboard.components.charts import ERROR, HIGHLIGHT
from dashboard.components.waterfall import (
    MAX_SPANS,
    ordered_spans,
    service_colours,
    waterfall_figure,
)
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


def _hop_trace() -> Trace:
    """gateway server → client → catalog-1 server (→ a failed shard query)."""

    def s(sid: str, parent: str, service: str, kind: int, start: int, end: int, **kw) -> Span:  # type: ignore[no-untyped-def]
        resource = {"service.name": service, "service.instance.id": kw.pop("instance", "")}
        return Span("t" * 32, sid, parent, service, f"op-{sid}", kind, start, end, 0,
                    resource=resource, **kw)  # fmt: skip

    ms = 1_000_000
    return Trace(
        "t" * 32,
        [
            s("gw", "", "narrows-gateway", 2, 0, 20 * ms, instance="gateway-0"),
            s("cl", "gw", "narrows-gateway", 3, 1 * ms, 19 * ms, instance="gateway-0"),
            s("srv", "cl", "narrows-catalog", 2, 2 * ms, 17 * ms, instance="catalog-1"),
            replace(
                s("db", "srv", "narrows-catalog", 3, 3 * ms, 5 * ms, instance="catalog-1"),
                status_code=2,
            ),
        ],
    )


def test_bars_are_coloured_per_service_with_errors_and_the_critical_path_kept_apart() -> None:
    trace = _hop_trace()
    fig = waterfall_figure(trace, critical={"srv"})
    bars = fig.data[0]
    fills = list(bars.marker.color)
    colours = service_colours({"narrows-gateway", "narrows-catalog"})
    assert fills[:3] == [
        colours["narrows-gateway"],
        colours["narrows-gateway"],
        colours["narrows-catalog"],
    ]
    assert colours["narrows-gateway"] != colours["narrows-catalog"]
    assert not {ERROR, HIGHLIGHT} & set(colours.values())
    assert fills[3] == ERROR
    assert "✖" in bars.y[3]
    assert list(bars.marker.line.width) == [0, 0, 3, 0]  # the critical path, outlined
    legend = {t.name for t in fig.data[1:] if t.showlegend}
    assert legend == {"narrows-gateway", "narrows-catalog"}


def test_a_service_boundary_is_marked_and_a_hop_shows_its_network_time() -> None:
    fig = waterfall_figure(_hop_trace())
    labels = list(fig.data[0].y)
    assert "▸" in labels[2]
    assert "▸" not in labels[1]
    assert "⇄ 3.00 ms net" in labels[1]  # client 18 ms − server 15 ms
    ticks = [(sh.x0, sh.y0, sh.y1) for sh in fig.layout.shapes]
    assert ticks == [(2.0, 1.5, 2.5)]  # at the server span's start, on its row
    assert "catalog-1" in fig.data[0].hovertext[2]
