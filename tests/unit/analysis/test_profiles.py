"""Per-trace facts: the request as the service served it, and the service it entered."""

from __future__ import annotations

import pytest

from dashboard.analysis.profiles import profile, profiles, service_of
from dashboard.sources.model import Trace
from tests.unit.analysis.helpers import server, span, trace


def _with_caller(trace_id: str = "t1") -> Trace:
    """A load generator's client span (0..100: it waited 60 ms to send) above the demo's
    server span (60..90) and its query (65..85)."""
    return trace(
        span("GET /items/{id}", 0, 100, sid="c", service="narrows-load"),
        server("GET /items/{id}", 60, 90, parent="c"),
        span("SELECT items", 65, 85, "root", attrs={"app.shard.id": "1"}),
        trace_id=trace_id,
    )


def test_a_request_is_measured_from_its_entry_server_span() -> None:
    p = profile(_with_caller())
    assert p.duration_ms == pytest.approx(30.0)
    assert p.tree.root.span_id == "root"
    assert sum(p.critical_ms.values()) == pytest.approx(30.0)
    assert "c" not in p.critical_ms
    # the caller's span stays in the trace the evidence links to
    assert any(s.span_id == "c" for s in p.trace.spans)


def test_a_trace_holding_only_its_callers_span_does_not_hide_the_service() -> None:
    caller_only = span("GET /items/{id}", 0, 10, sid="c", service="narrows-load")
    cut_short = trace(caller_only, trace_id="t2")
    group = profiles([_with_caller("t1"), cut_short])
    assert service_of(group) == "demo"
