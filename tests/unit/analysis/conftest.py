"""Fixtures for the analysis tests (helpers live in tests/unit/analysis/helpers.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dashboard.analysis.diagnose import Diagnosis
from tests.unit.analysis.helpers import run_scenario

Run = Callable[..., Diagnosis]


@pytest.fixture
def run() -> Run:
    """Diagnose a synthetic demo scenario: ``run(Fault(...), seed=1, rate_rps=200)``."""
    return run_scenario
