"""Shard routing: the jump consistent hash is stable, balanced, and moves few keys on growth."""

from __future__ import annotations

import pytest

from demo_app.shards import Shards, jump_hash, shard_for


def test_jump_hash_matches_the_papers_reference_implementation() -> None:
    """Values from Lamping & Veach's C++ code (compiled and run once); data placement
    depends on them never changing."""
    keys = [0, 1, 2, 3, 42, 2**40, 2**64 - 1]
    assert [jump_hash(k, 10) for k in keys] == [0, 6, 6, 8, 2, 9, 9]


def test_routing_is_stable_for_known_keys() -> None:
    assert [shard_for(k, 4) for k in range(1, 13)] == [3, 0, 1, 3, 3, 0, 1, 0, 2, 2, 0, 1]
    assert [shard_for(k, 16) for k in (1, 100, 10_000, 2**31 - 1)] == [15, 3, 8, 10]


@pytest.mark.parametrize("shards", [2, 4, 8, 16])
def test_uniform_keys_spread_within_a_few_percent(shards: int) -> None:
    counts = [0] * shards
    for key in range(1, 200_001):
        counts[shard_for(key, shards)] += 1
    mean = 200_000 / shards
    assert max(counts) / mean < 1.03
    assert min(counts) / mean > 0.97


@pytest.mark.parametrize("shards", [3, 4, 10])
def test_adding_a_shard_moves_about_one_in_n_plus_one_keys_all_to_the_new_shard(
    shards: int,
) -> None:
    keys = range(1, 100_001)
    moved = [k for k in keys if shard_for(k, shards) != shard_for(k, shards + 1)]
    expected = len(keys) / (shards + 1)
    assert abs(len(moved) - expected) / expected < 0.05
    assert {shard_for(k, shards + 1) for k in moved} == {shards}


def test_every_key_lands_on_a_valid_shard_including_extremes() -> None:
    for key in (0, 1, 2**31 - 1, 2**53, 2**64 - 1, 2**64 + 5):
        assert 0 <= shard_for(key, 7) < 7


def test_jump_hash_rejects_zero_buckets() -> None:
    with pytest.raises(ValueError, match="buckets"):
        jump_hash(1, 0)


def test_group_orders_shards_ascending_for_deadlock_free_transactions() -> None:
    class _Store:
        def __init__(self, i: int) -> None:
            self.id = i

    shards = Shards([_Store(i) for i in range(4)])  # type: ignore[misc]
    groups = shards.group(range(1, 13))
    assert list(groups) == sorted(groups)
    assert sorted(k for keys in groups.values() for k in keys) == list(range(1, 13))
    assert all(shard_for(k, 4) == s for s, keys in groups.items() for k in keys)
