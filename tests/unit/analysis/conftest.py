"""Helpers for the analysis tests: run ``diagnose`` on a synthetic demo scenario."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dashboard.analysis.diagnose import Diagnosis, diagnose_report
from dashboard.analysis.inputs import inputs_from_traces
from tests.support.synthetic import Fault, Scenario, generate

Run = Callable[..., Diagnosis]


def run_scenario(
    *faults: Fault, inputs: dict[str, Any] | None = None, **scenario: Any
) -> Diagnosis:
    """Generate a window of demo traffic and diagnose it as a source would feed it: all
    traces aggregated, a random sample of 400 and the 20 slowest per route as traces."""
    traces = generate(Scenario(faults=faults, **scenario))
    return diagnose_report(
        inputs_from_traces(traces, seed=scenario.get("seed", 0), **(inputs or {}))
    )


@pytest.fixture
def run() -> Run:
    return run_scenario
