"""The inputs contract: span rows, frame schemas and what a trace-only source can build."""

from __future__ import annotations

import pandas as pd
import pytest

from dashboard.analysis.inputs import (
    RED_COLUMNS,
    SPAN_COLUMNS,
    AnalysisInputs,
    SloObjective,
    inputs_from_traces,
    spans_frame,
)
from tests.support.synthetic import Scenario, generate
from tests.unit.analysis.helpers import server, span, trace


def test_span_rows_carry_the_route_of_the_entry_server_span_even_under_a_client_root() -> None:
    t = trace(
        span("GET", 0, 12, sid="c", service="narrows-load"),
        server("GET /items/{id}", 1, 11, parent="c"),
        span("SELECT items", 2, 9, "root", attrs={"app.shard.id": 2, "app.pool.wait_ms": 1.5}),
    )
    frame = spans_frame([t])
    assert list(frame.columns) == list(SPAN_COLUMNS)
    assert set(frame["route"]) == {"GET /items/{id}"}
    assert set(frame["trace_duration_ms"]) == {10.0}
    query = frame[frame["name"] == "SELECT items"].iloc[0]
    assert (query["shard_id"], query["pool_wait_ms"]) == ("2", 1.5)


def test_a_frame_without_its_columns_is_rejected_naming_them() -> None:
    red = pd.DataFrame({"ts": [], "route": []})
    inputs = AnalysisInputs(traces=[], slow_traces=[], red=red)
    with pytest.raises(ValueError, match=r"red frame lacks columns \['requests'"):
        inputs.frames_ok()


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5])
def test_an_availability_objective_outside_zero_one_is_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="availability must be within"):
        SloObjective(availability=bad)


def test_inputs_from_traces_take_each_routes_slowest_and_aggregate_all() -> None:
    traces = generate(Scenario(seed=1, duration_s=5.0))
    inputs = inputs_from_traces(traces, sample_size=50, slow_per_route=3, step_s=1.0)
    assert len(inputs.traces) == 50
    assert len(inputs.slow_traces) == 15  # 3 for each of the five routes
    assert inputs.red is not None
    assert set(RED_COLUMNS) <= set(inputs.red.columns)
    assert int(inputs.red["requests"].sum()) == len(traces)
    inputs.frames_ok()
