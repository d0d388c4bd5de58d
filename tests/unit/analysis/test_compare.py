"""Selection vs baseline: attributes ranked by how differently they are distributed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dashboard.analysis.compare import rank_attributes, slow_selection


def frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = 400
    base = pd.DataFrame(
        {
            "trace_id": [f"{i:032x}" for i in range(n)],
            "shard_id": rng.choice(["0", "1", "2", "3"], n),
            "cache_hit": rng.random(n) < 0.8,
            "pool_wait_ms": rng.exponential(0.2, n),
            "route": rng.choice(["GET /items/{id}", "GET /search"], n),
        }
    )
    sel = pd.DataFrame(
        {
            "trace_id": [f"{n + i:032x}" for i in range(100)],
            "shard_id": rng.choice(["0", "1", "2", "3"], 100, p=[0.1, 0.1, 0.7, 0.1]),
            "cache_hit": rng.random(100) < 0.8,
            "pool_wait_ms": rng.exponential(3.0, 100),
            "route": rng.choice(["GET /items/{id}", "GET /search"], 100),
        }
    )
    return sel, base


def test_the_over_represented_value_of_a_categorical_attribute_is_named() -> None:
    sel, base = frames()
    ranked = {d.attribute: d for d in rank_attributes(sel, base)}
    shard = ranked["shard_id"]
    assert shard.kind == "categorical"
    assert shard.value == "2"
    assert shard.selection > 0.5 > shard.baseline
    assert shard.p_value < 1e-6


def test_a_shifted_numeric_attribute_ranks_first() -> None:
    sel, base = frames()
    first = rank_attributes(sel, base)[0]
    assert (first.attribute, first.kind) == ("pool_wait_ms", "numeric")
    assert first.selection > first.baseline


def test_identically_distributed_attributes_score_low_and_are_not_significant() -> None:
    sel, base = frames()
    ranked = {d.attribute: d for d in rank_attributes(sel, base)}
    assert ranked["cache_hit"].score < 0.15
    assert ranked["cache_hit"].p_value > 0.01
    assert ranked["route"].p_value > 0.01


def test_identifiers_are_not_compared() -> None:
    sel, base = frames()
    assert "trace_id" not in {d.attribute for d in rank_attributes(sel, base)}


def test_slow_selection_splits_one_operation_at_a_duration_quantile() -> None:
    spans = pd.DataFrame({"name": ["q"] * 100 + ["other"], "duration_ms": [*range(100), 1000]})
    slow, rest = slow_selection(spans, "q", 0.9)
    assert len(slow) == 10
    assert len(rest) == 90
    assert slow["duration_ms"].min() > rest["duration_ms"].max()
