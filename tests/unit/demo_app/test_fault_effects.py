"""Each fault changes the service's behaviour where it should, and clearing it undoes that.

In-process (ASGI, SQLite shards in a temp dir): no sockets, no servers.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest

from demo_app.exceptions import ConfigError
from demo_app.service import DemoService
from demo_app.settings import DemoSettings
from tests.support.demo import SpanCapture, asgi_demo
from tests.unit.demo_app.conftest import keys_on

Settings = Callable[..., DemoSettings]


def _run(
    settings: DemoSettings,
    body: Callable[[httpx.AsyncClient, DemoService], Coroutine[Any, Any, None]],
) -> None:
    async def main() -> None:
        async with asgi_demo(settings) as (client, service):
            await body(client, service)

    asyncio.run(main())


async def _timed(client: httpx.AsyncClient, path: str) -> tuple[int, float]:
    started = time.perf_counter()
    resp = await client.get(path)
    return resp.status_code, time.perf_counter() - started


def test_slow_shard_slows_only_queries_on_that_shard_until_cleared(settings: Settings) -> None:
    async def body(client: httpx.AsyncClient, service: DemoService) -> None:
        await client.put("/admin/faults/slow_shard", json={"shard": 2, "delay_ms": 200})
        slow_key, fast_key, later_key = keys_on(2, 2)[0], keys_on(1, 1)[0], keys_on(2, 2)[1]
        status, slow = await _timed(client, f"/items/{slow_key}")
        assert status == 200
        assert slow >= 0.2
        status, fast = await _timed(client, f"/items/{fast_key}")
        assert status == 200
        assert fast < 0.2
        await client.delete("/admin/faults/slow_shard")
        status, after = await _timed(client, f"/items/{later_key}")
        assert status == 200
        assert after < 0.2

    _run(settings(cache="none"), body)


def test_failing_shard_answers_503_for_its_keys_only(settings: Settings) -> None:
    async def body(client: httpx.AsyncClient, service: DemoService) -> None:
        resp = await client.put("/admin/faults/failing_shard", json={"shard": 1})
        assert resp.status_code == 200
        bad, good = keys_on(1, 1)[0], keys_on(3, 1)[0]
        resp = await client.get(f"/items/{bad}")
        assert resp.status_code == 503
        assert resp.json()["error"].startswith("shard 1 unavailable")
        assert (await client.get(f"/items/{good}")).status_code == 200
        assert (await client.get(f"/items?ids={good},{bad}")).status_code == 503
        assert (await client.get("/search?q=river")).status_code == 503
        await client.delete("/admin/faults/failing_shard")
        assert (await client.get(f"/items/{bad}")).status_code == 200
        assert (await client.get("/search?q=river")).status_code == 200

    _run(settings(cache="none"), body)


def test_cache_outage_degrades_to_shard_reads_and_recovers(
    settings: Settings, spans: SpanCapture
) -> None:
    async def body(client: httpx.AsyncClient, service: DemoService) -> None:
        await client.put("/admin/faults/cache_outage")
        for _ in range(2):
            assert (await client.get("/items/5")).status_code == 200
        lookups = spans.named("cache.get")
        assert len(lookups) == 2
        assert all(
            s.status.is_ok is False and s.attributes["app.cache.hit"] is False for s in lookups
        )
        assert len(spans.named("SELECT items")) == 2  # both went to the shard

        spans.clear()
        await client.delete("/admin/faults/cache_outage")
        for _ in range(2):
            assert (await client.get("/items/5")).status_code == 200
        hits = [s.attributes["app.cache.hit"] for s in spans.named("cache.get")]
        assert hits == [False, True]

    _run(settings(), body)


def test_cache_ttl_makes_entries_expire_almost_at_once(
    settings: Settings, spans: SpanCapture
) -> None:
    async def body(client: httpx.AsyncClient, service: DemoService) -> None:
        await client.put("/admin/faults/cache_ttl", json={"seconds": 0.05})
        await client.get("/items/9")
        await asyncio.sleep(0.15)
        await client.get("/items/9")
        assert [s.attributes["app.cache.hit"] for s in spans.named("cache.get")] == [False, False]

        spans.clear()
        await client.delete("/admin/faults/cache_ttl")
        await client.get("/items/10")
        await asyncio.sleep(0.15)
        await client.get("/items/10")
        assert [s.attributes["app.cache.hit"] for s in spans.named("cache.get")] == [False, True]

    _run(settings(), body)


def test_sequential_fanout_queries_shards_one_after_another(
    settings: Settings, spans: SpanCapture
) -> None:
    ids = ",".join(str(keys_on(s, 1)[0]) for s in range(4))

    async def shard_spans(client: httpx.AsyncClient) -> list[Any]:
        spans.clear()
        assert (await client.get(f"/items?ids={ids}")).status_code == 200
        found = sorted(spans.named("SELECT items"), key=lambda s: s.start_time)
        assert len(found) == 4
        return found

    async def body(client: httpx.AsyncClient, service: DemoService) -> None:
        parallel = await shard_spans(client)
        # In parallel every shard query starts before the first one ends.
        assert max(s.start_time for s in parallel) < min(s.end_time for s in parallel)
        await client.put("/admin/faults/sequential_fanout")
        staircase = await shard_spans(client)
        assert all(a.end_time <= b.start_time for a, b in itertools.pairwise(staircase))
        await client.delete("/admin/faults/sequential_fanout")
        again = await shard_spans(client)
        assert max(s.start_time for s in again) < min(s.end_time for s in again)

    _run(settings(cache="none"), body)


def test_pool_size_makes_requests_queue_for_a_connection(
    settings: Settings, spans: SpanCapture
) -> None:
    keys = keys_on(0, 6)

    async def burst(client: httpx.AsyncClient, batch: list[int]) -> float:
        started = time.perf_counter()
        answers = await asyncio.gather(*(client.get(f"/items/{k}") for k in batch))
        assert all(r.status_code == 200 for r in answers)
        return time.perf_counter() - started

    async def body(client: httpx.AsyncClient, service: DemoService) -> None:
        await client.put("/admin/faults/slow_shard", json={"shard": 0, "delay_ms": 100})
        await client.put("/admin/faults/pool_size", json={"shard": 0, "size": 1})
        assert await burst(client, keys[:3]) >= 0.3  # one connection: served one by one
        waits = [s.attributes["app.pool.wait_ms"] for s in spans.named("SELECT items")]
        assert max(waits) >= 150
        await client.delete("/admin/faults/pool_size")
        assert await burst(client, keys[3:]) < 0.3  # four connections again

    _run(settings(cache="none"), body)


def test_cpu_burn_blocks_the_event_loop_on_its_route(settings: Settings) -> None:
    async def body(client: httpx.AsyncClient, service: DemoService) -> None:
        await client.put("/admin/faults/cpu_burn", json={"route": "/items/{item_id}", "ms": 150})
        status, burned = await _timed(client, "/items/3")
        assert status == 200
        assert burned >= 0.15
        status, other = await _timed(client, "/items?ids=3")
        assert status == 200
        assert other < 0.15
        await client.delete("/admin/faults/cpu_burn")
        status, after = await _timed(client, "/items/3")
        assert status == 200
        assert after < 0.15

    _run(settings(), body)


def test_hot_keys_are_published_for_the_load_generator(settings: Settings) -> None:
    async def body(client: httpx.AsyncClient, service: DemoService) -> None:
        await client.put("/admin/faults/hot_keys", json={"keys": 5, "share": 0.9})
        entry = (await client.get("/admin/faults/hot_keys")).json()
        assert entry["active"]
        assert len(entry["hot_ids"]) == 5
        assert all(1 <= i <= 400 for i in entry["hot_ids"])
        await client.delete("/admin/faults/hot_keys")
        entry = (await client.get("/admin/faults/hot_keys")).json()
        assert not entry["active"]
        assert "hot_ids" not in entry

    _run(settings(), body)


def test_faults_given_at_start_are_on_from_the_first_request(settings: Settings) -> None:
    async def body(client: httpx.AsyncClient, service: DemoService) -> None:
        listing = (await client.get("/admin/faults")).json()
        active = {f["name"]: f["params"] for f in listing["faults"] if f["active"]}
        assert active == {"failing_shard": {"shard": 3, "error_rate": 1.0, "seed": 0}}
        assert (await client.get(f"/items/{keys_on(3, 1)[0]}")).status_code == 503

    _run(settings(faults=("failing_shard:shard=3",)), body)


def test_db_latency_holds_every_query_and_a_one_connection_pool_then_queues(
    settings: Settings, spans: SpanCapture
) -> None:
    """--db-latency-ms is a networked database's round trip: each query holds its pooled
    connection that long, so pool_size=1 serialises concurrent reads of one shard."""
    keys = keys_on(1, 4)

    async def body(client: httpx.AsyncClient, service: DemoService) -> None:
        status, alone = await _timed(client, f"/items/{keys[0]}")
        assert status == 200
        assert alone >= 0.06
        await client.put("/admin/faults/pool_size", json={"shard": 1, "size": 1})
        spans.clear()
        answers = await asyncio.gather(*(client.get(f"/items/{k}") for k in keys[1:]))
        assert all(r.status_code == 200 for r in answers)
        waits = sorted(s.attributes["app.pool.wait_ms"] for s in spans.named("SELECT items"))
        assert len(waits) == 3
        assert waits[-1] >= 100  # the third waited for two 60 ms queries

    _run(settings(cache="none", db_latency_ms=60), body)


def test_db_latency_out_of_range_is_a_clear_config_error(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="--db-latency-ms must be 0"):
        settings(db_latency_ms=-1)
