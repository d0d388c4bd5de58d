"""Fan-out shape: parallel vs staircase siblings, and what parallelism would save."""

from __future__ import annotations

import pytest

from dashboard.analysis.fanout import detect_sequential_fanout, fanout_groups
from dashboard.analysis.profiles import profile, profiles
from dashboard.sources.model import Trace
from tests.unit.analysis.helpers import server, span, trace

DB = {"db.system.name": "sqlite", "db.operation.name": "SELECT"}


def fan(i: int, starts: list[float], op: str = "SELECT", route: str = "GET /search") -> Trace:
    """Four 5 ms queries on shards 0..3 starting at ``starts``."""
    end = max(starts) + 5 + 1
    kids = [
        span(
            "SELECT items",
            s,
            s + 5,
            "root",
            attrs={**DB, "db.operation.name": op, "app.shard.id": str(k)},
        )
        for k, s in enumerate(starts)
    ]
    return trace(server(route, 0, end), *kids, trace_id=f"t{i}")


def test_parallel_siblings_have_seriality_zero_and_save_nothing() -> None:
    [group] = fanout_groups(profile(fan(0, [1, 1, 1.1, 1.2])))
    assert group.seriality == pytest.approx(0.0, abs=0.02)
    assert not group.sequential
    assert group.saving_ms == pytest.approx(0.2)


def test_a_staircase_has_seriality_one_and_saves_all_but_the_longest() -> None:
    [group] = fanout_groups(profile(fan(0, [1, 6, 11, 16])))
    assert group.seriality == pytest.approx(1.0)
    assert group.sequential
    assert group.saving_ms == pytest.approx(15.0)


def test_sequential_writes_are_not_a_fanout_to_parallelise() -> None:
    assert fanout_groups(profile(fan(0, [1, 6, 11, 16], op="UPDATE"))) == []


def test_a_route_whose_fanouts_are_staircases_is_reported_with_its_saving() -> None:
    seq = profiles([fan(i, [1, 6, 11, 16]) for i in range(20)])
    par = profiles([fan(100 + i, [1, 1, 1, 1], route="GET /items") for i in range(20)])
    findings = detect_sequential_fanout(seq + par, seq + par)
    [found] = findings
    assert found.subject == {"http.request.method": "GET", "http.route": "/search"}
    assert found.is_alarm
    assert found.impact.value == pytest.approx(15.0)
    assert found.evidence.aggregate["mean_width"] == pytest.approx(4.0)


def test_a_staircase_in_every_request_counts_against_the_typical_request_too() -> None:
    """The few slowest requests of a quiet route may be slow for another reason (a 400 ms
    stall here); the staircase still slows every request, and that is its impact."""
    seq = profiles([fan(i, [1, 6, 11, 16]) for i in range(20)])
    stalled = profiles(
        [
            trace(
                server("GET /search", 0, 400),
                *[
                    span("SELECT items", 380 + 5 * k, 385 + 5 * k, "root", attrs={**DB})
                    for k in range(4)
                ],
                trace_id=f"slow{i}",
            )
            for i in range(3)
        ]
    )
    [found] = detect_sequential_fanout(seq, stalled)
    assert found.is_alarm
    assert found.impact.on == "mean of 20 typical GET /search"
    assert found.impact.score == pytest.approx(15.0 / 22.0)
