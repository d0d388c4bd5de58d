"""The cache clients: in-process TTL/LRU (default) or Redis, behind one small async interface.

Every failure surfaces as ``CacheUnavailable``; the catalogue catches it and reads the shard,
so an outage costs latency and hit ratio, never a 500.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from typing import Protocol

from demo_app.exceptions import CacheUnavailable
from demo_app.faults import Faults

__all__ = ["Cache", "MemoryCache", "RedisCache", "make_cache"]


class Cache(Protocol):
    name: str
    system: str | None  # db.system.name of the lookup span (None for in-process)

    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...
    async def delete(self, *keys: str) -> None: ...
    async def close(self) -> None: ...


def _ensure_connected(switches: Faults) -> None:
    """Named for what a real client does here: this is the line an exception's stack shows."""
    # cache_outage simulates the cache being unreachable (a dead node, a network partition):
    # the client fails the way a refused connection does, before any data is read.
    if switches.cache_unreachable():
        raise CacheUnavailable("Error 111 connecting to cache: Connection refused.")


class MemoryCache:
    """A TTL + LRU dict in this process; bounded in entries."""

    system: str | None = None

    def __init__(self, faults: Faults, *, max_items: int = 10_000, name: str = "items") -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be ≥ 1, got {max_items}")
        self.name = name
        self._switches = faults
        self._max = max_items
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        _ensure_connected(self._switches)
        entry = self._data.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        _ensure_connected(self._switches)
        self._data[key] = (time.monotonic() + ttl_s, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    async def delete(self, *keys: str) -> None:
        _ensure_connected(self._switches)
        for key in keys:
            self._data.pop(key, None)

    def __len__(self) -> int:
        return len(self._data)

    async def close(self) -> None:
        self._data.clear()


class RedisCache:
    """Redis via redis.asyncio with short timeouts and no retries, so an outage fails fast."""

    system: str | None = "redis"

    def __init__(
        self, url: str, faults: Faults, *, timeout_s: float = 0.25, name: str = "items"
    ) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.name = name
        self._switches = faults
        self._errors = (aioredis.RedisError, OSError)
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )

    async def get(self, key: str) -> bytes | None:
        _ensure_connected(self._switches)
        try:
            value = await self._client.get(key)
        except self._errors as exc:
            raise CacheUnavailable(str(exc) or type(exc).__name__) from exc
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        _ensure_connected(self._switches)
        try:
            await self._client.set(key, value, px=max(1, int(ttl_s * 1000)))
        except self._errors as exc:
            raise CacheUnavailable(str(exc) or type(exc).__name__) from exc

    async def delete(self, *keys: str) -> None:
        _ensure_connected(self._switches)
        if not keys:
            return
        try:
            await self._client.delete(*keys)
        except self._errors as exc:
            raise CacheUnavailable(str(exc) or type(exc).__name__) from exc

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # closing is best effort
            await self._client.aclose()


def make_cache(spec: str, faults: Faults, *, max_items: int) -> Cache | None:
    """``memory`` (default), ``none``, or a ``redis://``/``rediss://``/``unix://`` URL."""
    if spec == "none":
        return None
    if spec == "memory":
        return MemoryCache(faults, max_items=max_items)
    return RedisCache(spec, faults)
