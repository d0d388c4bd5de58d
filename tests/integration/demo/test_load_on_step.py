"""The load generator reports each finished step as it ends (what `narrows capacity`
prints its per-step progress from)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from demo_app.load import LoadConfig, LoadGenerator
from demo_app.load_stats import StepStats
from demo_app.settings import DemoSettings
from tests.support.demo import demo_server

pytestmark = pytest.mark.integration


def test_each_finished_step_is_handed_over_once_in_order_as_it_ends(tmp_path: Path) -> None:
    settings = DemoSettings(data_dir=tmp_path / "data", seed_items=200, cache="none")
    seen: list[tuple[int, int | None, int, float]] = []
    with demo_server(settings) as demo:
        config = LoadConfig(
            target=demo.url,
            concurrency=(1, 2, 4),
            step_seconds=0.6,
            mix={"get": 1.0},
            max_id=200,
            progress_s=0.0,
        )
        started = time.monotonic()

        def on_step(step: StepStats) -> None:
            seen.append(
                (step.index, step.concurrency, step.all.latency.count, time.monotonic() - started)
            )

        report = asyncio.run(LoadGenerator(config, on_step=on_step).run())
    assert [(i, c) for i, c, _, _ in seen] == [(1, 1), (2, 2), (3, 4)]
    # Handed over finished: the counts are final, and each arrives after its own step.
    assert [n for _, _, n, _ in seen] == [s.all.latency.count for s in report.steps]
    assert all(n > 0 for _, _, n, _ in seen)
    assert all(at >= 0.6 * i for i, _, _, at in seen)
