"""The item catalogue: cache-aside single reads, writes that invalidate, fan-out over shards.

Single-key reads go cache → shard (and fill the cache); multi-get and search go straight to
the shards, in parallel, one query per shard. A cache failure is recorded on its lookup
span and the read continues on the shard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar

from demo_app.backends import Connection
from demo_app.cache import Cache
from demo_app.exceptions import CacheUnavailable
from demo_app.faults import Faults
from demo_app.models import Item
from demo_app.shards import Shards
from instrumentation import cache_lookup

__all__ = ["Catalog", "cache_key", "fan_out"]

T = TypeVar("T")
_log = logging.getLogger(__name__)
_COLUMNS = "id, name, price, stock, text"


def cache_key(item_id: int) -> str:
    return f"item:{item_id}"


def _item(row: Sequence[object]) -> Item:
    item_id, name, price, stock, text = row
    return Item.model_construct(
        id=int(item_id),  # type: ignore[call-overload]
        name=str(name),
        price=float(price),  # type: ignore[arg-type]
        stock=int(stock),  # type: ignore[call-overload]
        text=str(text),
    )


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def fan_out(
    calls: Sequence[Callable[[], Coroutine[Any, Any, T]]], *, sequential: bool
) -> list[T]:
    """Run one call per shard, in parallel; the first failure cancels the rest and is raised."""
    if sequential:
        # sequential_fanout simulates the N+1 habit: a loop that awaits each shard in turn,
        # so latency grows with the number of shards touched (a staircase in the trace).
        return [await call() for call in calls]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call()) for call in calls]
    except BaseExceptionGroup as eg:
        raise _first_error(eg) from None
    return [task.result() for task in tasks]


class Catalog:
    def __init__(
        self, shards: Shards, cache: Cache | None, faults: Faults, *, ttl_s: float
    ) -> None:
        self.shards = shards
        self.cache = cache
        self._faults = faults
        self._ttl_s = ttl_s

    # --- cache-aside ----------------------------------------------------------------------

    async def _cached(self, item_id: int) -> tuple[Item | None, bool]:
        """(the cached item or None, whether the cache answered at all)."""
        if self.cache is None:
            return None, False
        try:
            with cache_lookup(self.cache.name, system=self.cache.system) as lookup:
                raw = await self.cache.get(cache_key(item_id))
                lookup.hit = raw is not None
        except CacheUnavailable:
            return None, False  # recorded as a cache error on the span; read the shard
        if raw is None:
            return None, True
        return Item.model_validate_json(raw), True

    async def _fill(self, item: Item) -> None:
        if self.cache is None:
            return
        # cache_ttl simulates a misconfigured TTL: entries expire almost at once, so hot
        # keys miss together and stampede their shard.
        ttl = self._faults.cache_ttl_s(self._ttl_s)
        with contextlib.suppress(CacheUnavailable):
            await self.cache.set(cache_key(item.id), item.model_dump_json().encode(), ttl)

    async def invalidate(self, item_ids: Iterable[int]) -> None:
        """After a write: drop the cached copies (an outage here can leave a stale entry
        until its TTL ends — the usual cache-aside trade-off)."""
        if self.cache is None:
            return
        keys = [cache_key(i) for i in item_ids]
        try:
            await self.cache.delete(*keys)
        except CacheUnavailable:
            _log.warning("cache invalidation failed for %d key(s); stale until TTL", len(keys))

    async def get(self, item_id: int) -> Item | None:
        cached, reachable = await self._cached(item_id)
        if cached is not None:
            return cached
        items = await self._read(self.shards.for_key(item_id).id, [item_id])
        item = items.get(item_id)
        # A cache that just failed this request's lookup is not asked to store the item:
        # during an outage that second failing call doubled the cost of every read.
        if item is not None and reachable:
            await self._fill(item)
        return item

    async def put(self, item: Item) -> Item:
        async def upsert(conn: Connection) -> None:
            await conn.execute(
                f"INSERT INTO items ({_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET name = excluded.name, price = excluded.price,"
                " stock = excluded.stock, text = excluded.text",
                (item.id, item.name, item.price, item.stock, item.text),
            )

        await self.shards.for_key(item.id).run("UPSERT", "items", upsert)
        await self.invalidate([item.id])
        return item

    # --- shard reads ----------------------------------------------------------------------

    async def _read(self, shard_id: int, ids: Sequence[int]) -> dict[int, Item]:
        marks = ", ".join("?" for _ in ids)

        async def select(conn: Connection) -> dict[int, Item]:
            result = await conn.execute(
                f"SELECT {_COLUMNS} FROM items WHERE id IN ({marks})", list(ids)
            )
            return {item.id: item for item in map(_item, result.rows)}

        return await self.shards[shard_id].run("SELECT", "items", select)

    async def get_many(self, ids: Sequence[int]) -> dict[int, Item]:
        """One query per shard touched, in parallel (unless sequential_fanout is on)."""
        groups = self.shards.group(ids)
        calls = [(lambda s=shard, k=keys: self._read(s, k)) for shard, keys in groups.items()]
        found: dict[int, Item] = {}
        for part in await fan_out(calls, sequential=self._faults.sequential_fanout()):
            found.update(part)
        return found

    async def search(self, q: str, limit: int) -> list[tuple[int, Item]]:
        """Scatter to every shard, gather, rank by score (name match 2, text match 1), then id."""
        escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"

        def on(shard_id: int) -> Callable[[], Coroutine[Any, Any, list[tuple[int, Item]]]]:
            async def select(conn: Connection) -> list[tuple[int, Item]]:
                result = await conn.execute(
                    "SELECT * FROM (SELECT "
                    f"{_COLUMNS}, (CASE WHEN lower(name) LIKE ? ESCAPE '\\' THEN 2 ELSE 0 END"
                    " + CASE WHEN lower(text) LIKE ? ESCAPE '\\' THEN 1 ELSE 0 END) AS score"
                    " FROM items) AS scored WHERE score > 0 ORDER BY score DESC, id LIMIT ?",
                    (pattern, pattern, limit),
                )
                return [(int(row[5]), _item(row[:5])) for row in result.rows]

            return lambda: self.shards[shard_id].run("SELECT", "items", select)

        parts = await fan_out(
            [on(s.id) for s in self.shards.stores],
            sequential=self._faults.sequential_fanout(),
        )
        merged = [hit for part in parts for hit in part]
        merged.sort(key=lambda hit: (-hit[0], hit[1].id))
        return merged[:limit]
