"""The two shard backends, SQLite files and PostgreSQL databases, behind one async connection.

SQL is written once with ``?`` placeholders; the PostgreSQL connection rewrites them. The
shard store above never knows which backend it talks to, apart from ``system`` (the
``db.system.name`` of its spans) and ``namespace`` (its ``db.namespace``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

__all__ = [
    "Backend",
    "Connection",
    "PostgresBackend",
    "Result",
    "SqliteBackend",
    "postgres_dbname",
]

T = TypeVar("T")
MAX_THREADS_PER_SHARD = 64  # ≥ the largest pool, so a SQLite shard's pool is its only limit


@dataclass(frozen=True)
class Result:
    rows: list[tuple[Any, ...]]
    rowcount: int


class Connection(Protocol):
    @property
    def lost(self) -> bool:
        """True once the server is known to have dropped this connection (not a SQL error)."""
        ...

    async def execute(self, sql: str, params: Sequence[object] = ()) -> Result: ...
    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None: ...
    async def begin(self, *, exclusive: bool = False) -> None: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...
    async def close(self) -> None: ...


class Backend(Protocol):
    system: str
    namespace: str
    errors: tuple[type[BaseException], ...]

    async def connect(self) -> Connection: ...
    def failure(self) -> Exception: ...
    async def close(self) -> None: ...


# --- SQLite -------------------------------------------------------------------------------


class _SqliteConnection:
    """One sqlite3 connection used by one pool holder at a time, from the shard's threads."""

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._conn = conn
        self._executor = executor

    @property
    def lost(self) -> bool:
        return False  # a file has no server to lose

    async def _run(self, fn: Callable[[], T]) -> T:
        # run_in_executor does not carry contextvars; copy them so spans nest correctly.
        ctx = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(ctx.run, fn))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # A thread cannot be stopped: a cancelled caller (a sibling's failure in a
            # fan-out, a client gone) keeps this connection until its thread has finished,
            # so the pool never hands it out, nor closes it, while sqlite3 still runs on it
            # (closing a connection in use from another thread crashes the process).
            await _wait_out(future)
            raise

    async def execute(self, sql: str, params: Sequence[object] = ()) -> Result:
        def run() -> Result:
            # cursor().execute() so the sqlite3 instrumentation sees the query.
            cur = self._conn.cursor()
            try:
                cur.execute(sql, tuple(params))
                rows = cur.fetchall() if cur.description else []
                return Result(rows, cur.rowcount)
            finally:
                cur.close()

        return await self._run(run)

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        def run() -> None:
            cur = self._conn.cursor()
            try:
                cur.executemany(sql, [tuple(r) for r in rows])
            finally:
                cur.close()

        await self._run(run)

    async def begin(self, *, exclusive: bool = False) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that later needs
        # it can fail with SQLITE_BUSY without waiting for busy_timeout.
        await self.execute("BEGIN IMMEDIATE")

    async def commit(self) -> None:
        await self.execute("COMMIT")

    async def rollback(self) -> None:
        if self._conn.in_transaction:
            await self.execute("ROLLBACK")

    async def close(self) -> None:
        await self._run(self._conn.close)


async def _wait_out(future: asyncio.Future[Any]) -> None:
    """Wait until ``future`` is done, through any further cancellation (the caller re-raises
    it afterwards); the thread's own result or error no longer matters."""
    while not future.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([future])
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log "never retrieved"


class SqliteBackend:
    """A shard in one SQLite file (WAL, so readers do not wait for the writer)."""

    system = "sqlite"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.namespace = path.stem
        self._executor = ThreadPoolExecutor(
            max_workers=MAX_THREADS_PER_SHARD, thread_name_prefix=f"sqlite-{path.stem}"
        )

    async def connect(self) -> Connection:
        def open_() -> sqlite3.Connection:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            return conn

        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(self._executor, open_)
        return _SqliteConnection(conn, self._executor)

    def failure(self) -> Exception:
        return sqlite3.OperationalError("disk I/O error")

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


# --- PostgreSQL -----------------------------------------------------------------------------


def postgres_dbname(dsn: str) -> str:
    """The database name in a DSN (URL or key=value), for ``db.namespace``; never the password."""
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(dsn).get("dbname") or "postgres")


class _PostgresConnection:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    @property
    def lost(self) -> bool:
        # psycopg marks a connection broken when the server went away under it (a restart,
        # a crash, a proxy's idle timeout), never for an error the server reported.
        return bool(self._conn.broken or self._conn.closed)

    async def execute(self, sql: str, params: Sequence[object] = ()) -> Result:
        async with self._conn.cursor() as cur:
            await cur.execute(sql.replace("?", "%s"), tuple(params))
            rows = await cur.fetchall() if cur.description else []
            return Result([tuple(r) for r in rows], cur.rowcount)

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        async with self._conn.cursor() as cur:
            await cur.executemany(sql.replace("?", "%s"), [tuple(r) for r in rows])

    async def begin(self, *, exclusive: bool = False) -> None:
        await self.execute("BEGIN")
        if exclusive:  # schema set-up: one replica at a time
            await self.execute("SELECT pg_advisory_xact_lock(7246)")

    async def commit(self) -> None:
        await self.execute("COMMIT")

    async def rollback(self) -> None:
        await self.execute("ROLLBACK")

    async def close(self) -> None:
        await self._conn.close()


class PostgresBackend:
    """A shard in one PostgreSQL database; the database is created on first start if missing."""

    system = "postgresql"

    def __init__(self, dsn: str, *, connect_timeout_s: int = 3) -> None:
        import psycopg

        self.dsn = dsn
        self.namespace = postgres_dbname(dsn)
        self.errors: tuple[type[BaseException], ...] = (psycopg.Error, OSError)
        self._connect_timeout_s = connect_timeout_s
        self._created = False

    async def connect(self) -> Connection:
        import psycopg

        try:
            conn = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, connect_timeout=self._connect_timeout_s
            )
        except psycopg.OperationalError as exc:
            if self._created or not _missing_database(exc):
                raise
            await self._create_database()
            conn = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, connect_timeout=self._connect_timeout_s
            )
        self._created = True
        return _PostgresConnection(conn)

    async def _create_database(self) -> None:
        import psycopg
        from psycopg import sql
        from psycopg.conninfo import make_conninfo

        admin_dsn = make_conninfo(self.dsn, dbname="postgres")
        async with await psycopg.AsyncConnection.connect(
            admin_dsn, autocommit=True, connect_timeout=self._connect_timeout_s
        ) as admin:
            try:
                create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.namespace))
                await admin.execute(create)
            except psycopg.errors.DuplicateDatabase:
                pass  # another replica created it first

    def failure(self) -> Exception:
        import psycopg

        return psycopg.OperationalError("server closed the connection unexpectedly")

    async def close(self) -> None:
        return None


def _missing_database(exc: Exception) -> bool:
    text = str(exc)
    return "database" in text and "does not exist" in text
