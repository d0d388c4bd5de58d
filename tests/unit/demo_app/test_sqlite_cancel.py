"""A cancelled SQLite query keeps its connection until its worker thread has finished.

A fan-out whose sibling fails cancels the other shards' queries, but a thread cannot be
stopped: if the connection went back to the pool (or was closed as broken) while sqlite3
still ran on it, the next holder or the close would use it concurrently, which crashed
the demo with SIGSEGV under the failing_shard fault.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from demo_app.backends import SqliteBackend
from demo_app.pool import BoundedPool


def _slow_function(backend_conn: object, done: threading.Event) -> None:
    def slow(seconds: float) -> int:
        time.sleep(seconds)
        done.set()
        return 1

    backend_conn._conn.create_function("slow", 1, slow)  # type: ignore[attr-defined]


def test_a_cancelled_query_returns_only_after_its_thread_finished(tmp_path: Path) -> None:
    async def main() -> None:
        backend = SqliteBackend(tmp_path / "shard.sqlite")
        conn = await backend.connect()
        done = threading.Event()
        _slow_function(conn, done)
        task = asyncio.create_task(conn.execute("SELECT slow(0.3)"))
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the query was not cancelled")
        assert done.is_set(), "cancellation returned while the thread still used the connection"
        # The connection is still sound: it answers, and closes cleanly.
        assert (await conn.execute("SELECT 2")).rows == [(2,)]
        await conn.close()
        await backend.close()

    asyncio.run(main())


def test_the_pool_gets_the_connection_back_only_when_the_thread_is_done(tmp_path: Path) -> None:
    async def main() -> None:
        backend = SqliteBackend(tmp_path / "shard.sqlite")
        pool = BoundedPool(backend.connect, lambda c: c.close(), size=1, timeout_s=5)
        done = threading.Event()

        async def query() -> None:
            conn = await pool.acquire()
            _slow_function(conn, done)
            broken = True
            try:
                await conn.execute("SELECT slow(0.3)")
                broken = False
            finally:
                await pool.release(conn, broken=broken)

        task = asyncio.create_task(query())
        await asyncio.sleep(0.05)
        task.cancel()
        next_holder = await pool.acquire()  # waits for the cancelled query's connection
        assert done.is_set()
        assert task.cancelled()
        assert (await next_holder.execute("SELECT 3")).rows == [(3,)]
        await pool.release(next_holder)
        await pool.close()
        await backend.close()

    asyncio.run(main())
