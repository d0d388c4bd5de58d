"""Runs read queries off the event loop, each on its own cursor, with a deadline.

A query past its deadline is interrupted inside DuckDB and answered 503, so one heavy
question cannot hang the API; a semaphore keeps readers from starving the single writer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import duckdb

__all__ = ["QueryRunner", "QueryTimeout"]

T = TypeVar("T")


class QueryTimeout(Exception):
    """A query ran past the per-query timeout and was interrupted."""


class QueryRunner:
    def __init__(
        self,
        cursor: Callable[[], duckdb.DuckDBPyConnection],
        timeout_s: float,
        concurrency: int = 4,
        barrier: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._cursor = cursor
        """A new cursor on the store's current connection (it is reopened after DuckDB
        invalidates it; store/handle.py)."""
        self._barrier = barrier
        self._timeout_s = timeout_s
        self._sem = asyncio.Semaphore(concurrency)

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(cursor, *args)`` in a worker thread; QueryTimeout past the deadline.

        First the barrier (if any): data acknowledged before the query is committed."""
        if self._barrier is not None:
            await self._barrier()
        async with self._sem:
            cur = self._cursor()
            done = threading.Event()
            loop = asyncio.get_running_loop()

            def work() -> T:
                # One read transaction: an answer built from several queries sees one
                # snapshot, however much the writer commits meanwhile.
                try:
                    cur.begin()
                    try:
                        return fn(cur, *args)
                    finally:
                        cur.rollback()
                finally:
                    done.set()

            fut = loop.run_in_executor(None, work)
            try:
                return await asyncio.wait_for(asyncio.shield(fut), self._timeout_s)
            except TimeoutError:
                cur.interrupt()
                # Wait for the interrupted query to unwind before the cursor is closed.
                await asyncio.get_running_loop().run_in_executor(None, done.wait, 5.0)
                raise QueryTimeout(
                    f"query exceeded the {self._timeout_s:g}s limit; narrow the time range"
                ) from None
            except duckdb.InterruptException:
                raise QueryTimeout("query was interrupted") from None
            finally:
                if done.is_set():
                    cur.close()
