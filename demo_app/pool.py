"""A bounded connection pool per shard: at most ``size`` connections in use, callers queue.

Written here rather than taken from psycopg_pool because the same pool must serve SQLite
and PostgreSQL (so pool wait means the same thing on both backends), and because the
``pool_size`` fault changes its capacity while requests are waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["BoundedPool", "PoolTimeout"]

C = TypeVar("C")
_log = logging.getLogger(__name__)


class PoolTimeout(Exception):
    """No connection became free within the pool's timeout."""


class BoundedPool(Generic[C]):
    """Connections are opened lazily, reused, and dropped when a caller reports them broken."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[C]],
        close: Callable[[C], Awaitable[None]],
        *,
        size: int,
        timeout_s: float,
        capacity: Callable[[int], int] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"pool size must be ≥ 1, got {size}")
        self._connect = connect
        self._close = close
        self.size = size
        self._timeout_s = timeout_s
        self._capacity_of = capacity or (lambda configured: configured)
        self._idle: list[C] = []
        self._in_use = 0
        self._waiting = 0
        self._cond = asyncio.Condition()

    @property
    def capacity(self) -> int:
        """How many connections may be in use now.

        The ``pool_size`` fault lands here: it simulates a misconfigured pool (HotROD's
        "only gives one connection at a time"), so requests queue for a connection.
        """
        return max(1, self._capacity_of(self.size))

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def waiting(self) -> int:
        return self._waiting

    def _has_room(self) -> bool:
        return self._in_use < self.capacity

    async def acquire(self) -> C:
        """A connection for this caller alone; waits (FIFO) while the pool is at capacity."""
        async with self._cond:
            self._waiting += 1
            try:
                async with asyncio.timeout(self._timeout_s):
                    await self._cond.wait_for(self._has_room)
            except TimeoutError:
                raise PoolTimeout(f"no connection free within {self._timeout_s:g}s") from None
            finally:
                self._waiting -= 1
            self._in_use += 1
            conn = self._idle.pop() if self._idle else None
        if conn is not None:
            return conn
        try:
            return await self._connect()
        except BaseException:
            await self._give_back(None)
            raise

    async def release(self, conn: C, *, broken: bool = False) -> None:
        """Return a connection; a broken one is closed and replaced on the next acquire."""
        if broken:
            await self._safe_close(conn)
        await self._give_back(None if broken else conn)

    async def discard_idle(self) -> int:
        """Close every idle connection (after one turned out lost: its siblings were opened
        to the same server and went with it). Returns how many were closed."""
        async with self._cond:
            idle, self._idle = self._idle, []
        for conn in idle:
            await self._safe_close(conn)
        return len(idle)

    async def _give_back(self, conn: C | None) -> None:
        async with self._cond:
            self._in_use -= 1
            if conn is not None:
                self._idle.append(conn)
            # Wake as many waiters as there is room for (more than one after a fault clears).
            self._cond.notify(max(1, self.capacity - self._in_use))

    async def _safe_close(self, conn: C) -> None:
        try:
            await self._close(conn)
        except Exception:  # closing a dead connection may fail; it is gone either way
            _log.debug("closing a broken connection failed", exc_info=True)

    async def close(self) -> None:
        """Close idle connections (in-use ones are closed by their callers' release)."""
        async with self._cond:
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await self._close(conn)
