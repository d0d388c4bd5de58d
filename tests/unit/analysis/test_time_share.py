"""Where the time goes: critical-path shares in slow vs typical traces, and the saving."""

from __future__ import annotations

import pandas as pd
import pytest

from dashboard.analysis.profiles import Profile, profiles
from dashboard.analysis.time_share import slow_operations, where_time_goes
from dashboard.sources.model import Trace
from tests.unit.analysis.helpers import server, span, trace

ROUTE = "GET /search"


def search(i: int, shard2_ms: float, shard3_ms: float = 5.0) -> Trace:
    """A search fanning out to shards 2 and 3 in parallel, then 1 ms of merging."""
    end = 1 + max(shard2_ms, shard3_ms) + 1
    return trace(
        server(ROUTE, 0, end),
        span("SELECT items", 1, 1 + shard2_ms, "root", attrs={"app.shard.id": "2"}),
        span("SELECT items", 1, 1 + shard3_ms, "root", attrs={"app.shard.id": "3"}),
        trace_id=f"t{i}",
    )


def groups(slow_ms: float) -> tuple[list[Profile], list[Profile]]:
    slow = profiles([search(i, slow_ms) for i in range(10)])
    typical = profiles([search(100 + i, 4.0 + (i % 3) * 0.5) for i in range(30)])
    return slow, typical


def test_the_operation_that_grew_in_slow_traces_tops_the_table_with_its_saving() -> None:
    slow, typical = groups(50.0)
    table = where_time_goes(slow, typical)
    first = table.iloc[0]
    assert first["label"] == "demo: SELECT items [app.shard.id=2]"
    assert first["slow_share"] == pytest.approx(50 / 52)
    # As fast as typical (shard 2 itself is faster than 3 there, so 3 is critical; its
    # per-call critical time is the reference): 50 ms → ~5 ms.
    assert first["saving_ms"] == pytest.approx(45.0, abs=1.0)


def test_a_parallel_sibling_that_finished_first_gets_no_share() -> None:
    slow, typical = groups(50.0)
    table = where_time_goes(slow, typical)
    shard3 = table[table["label"] == "demo: SELECT items [app.shard.id=3]"]
    assert shard3.empty or float(shard3["slow_ms"].iloc[0]) == 0.0


def test_slow_operation_is_info_when_the_routes_latency_did_not_change() -> None:
    slow, typical = groups(50.0)
    [finding] = slow_operations(slow, typical, red=None)
    assert finding.kind == "slow_operation"
    assert finding.subject["app.shard.id"] == "2"
    assert finding.severity == "info"


def test_slow_operation_alarms_when_the_routes_p95_rose_during_the_window() -> None:
    slow, typical = groups(50.0)
    ts = pd.date_range("2026-01-01", periods=30, freq="10s", tz="UTC")
    p95 = [6.0] * 15 + [52.0] * 15
    red = pd.DataFrame(
        {
            "ts": ts,
            "route": ROUTE,
            "requests": 50,
            "errors": 0,
            "mean_ms": p95,
            "p50_ms": p95,
            "p95_ms": p95,
            "p99_ms": p95,
        }
    )
    [finding] = slow_operations(slow, typical, red=red)
    assert finding.severity == "critical"
    assert finding.evidence.aggregate["p95_after_ms"] == pytest.approx(52.0)


def test_the_requests_own_time_is_reported_but_never_raised_by_itself() -> None:
    """When the slow requests' time is their server span's own (no child running), it is
    the handler's code or a wait for the loop or the client: event_loop_blocking's call."""

    def waiting(i: int, own_ms: float) -> Trace:
        return trace(
            server(ROUTE, 0, own_ms + 6),
            span("SELECT items", own_ms, own_ms + 5, "root", attrs={"app.shard.id": "2"}),
            trace_id=f"w{i}",
        )

    slow = profiles([waiting(i, 50.0) for i in range(10)])
    typical = profiles([waiting(100 + i, 0.5) for i in range(30)])
    ts = pd.date_range("2026-01-01", periods=30, freq="10s", tz="UTC")
    p95 = [6.0] * 15 + [52.0] * 15
    red = pd.DataFrame(
        {"ts": ts, "route": ROUTE, "requests": 50, "errors": 0, "mean_ms": p95}
        | {"p50_ms": p95, "p95_ms": p95, "p99_ms": p95}
    )
    [finding] = slow_operations(slow, typical, red=red)
    assert finding.subject["span.name"] == ROUTE
    assert finding.severity == "info"
