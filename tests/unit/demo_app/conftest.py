"""Fixtures for the demo's in-process tests: SQLite shards in a temp dir, captured spans."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from demo_app.settings import DemoSettings
from demo_app.shards import shard_for
from tests.support.demo import SpanCapture, span_capture


@pytest.fixture(autouse=True, scope="session")
def _no_span_export() -> None:
    """Before any app is instrumented: spans stay in memory, never go to a port 4318."""
    span_capture()


@pytest.fixture
def spans() -> SpanCapture:
    capture = span_capture()
    capture.clear()
    return capture


@pytest.fixture
def settings(tmp_path: Path) -> Callable[..., DemoSettings]:
    """DemoSettings on SQLite under this test's tmp_path (small catalogue, 4 shards)."""

    def make(**overrides: object) -> DemoSettings:
        base: dict[str, object] = {"data_dir": tmp_path / "data", "seed_items": 400, "shards": 4}
        return DemoSettings(**{**base, **overrides})  # type: ignore[arg-type]

    return make


def keys_on(shard: int, count: int, shards: int = 4, start: int = 1) -> list[int]:
    """The first ``count`` item ids owned by ``shard``."""
    out = []
    key = start
    while len(out) < count:
        if shard_for(key, shards) == shard:
            out.append(key)
        key += 1
    return out
