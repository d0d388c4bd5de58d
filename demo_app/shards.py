"""Keys → shards (jump consistent hash), and ``ShardStore``: one shard's pool and queries.

Every query goes through ``ShardStore.run`` (or a held transaction), which opens the
instrumentation's shard span around the pool wait and the query, so ``app.pool.wait_ms``
shows queueing apart from work. Errors become ``ShardUnavailable`` (503) for the requests
that need this shard only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from demo_app.backends import Backend, Connection, PostgresBackend, SqliteBackend
from demo_app.exceptions import ConfigError, ShardUnavailable
from demo_app.faults import Faults
from demo_app.pool import BoundedPool, PoolTimeout
from demo_app.schema import DDL, make_item
from demo_app.settings import DemoSettings
from instrumentation import ShardQuery, shard_span

__all__ = ["HeldConnection", "ShardStore", "Shards", "jump_hash", "shard_for"]

T = TypeVar("T")
_MASK64 = (1 << 64) - 1
_log = logging.getLogger(__name__)


def jump_hash(key: int, buckets: int) -> int:
    """Lamping & Veach's jump consistent hash: growing N→N+1 moves only 1/(N+1) of keys."""
    if buckets < 1:
        raise ValueError(f"buckets must be ≥ 1, got {buckets}")
    key &= _MASK64
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & _MASK64
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


def _mix(key: int) -> int:
    """splitmix64's finaliser, so sequential ids spread like random ones."""
    z = (key + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def shard_for(key: int, shards: int) -> int:
    """The shard that owns ``key`` (items by item id, orders by order id)."""
    return jump_hash(_mix(key), shards)


class ShardStore:
    """One shard: its backend, its bounded pool, and the faults that can hit its database."""

    def __init__(
        self,
        shard_id: int,
        shard_count: int,
        backend: Backend,
        faults: Faults,
        *,
        pool_size: int,
        pool_timeout_s: float,
        db_latency_s: float = 0.0,
        seed_items: int = 0,
    ) -> None:
        self.id = shard_id
        self._seed_items = seed_items
        self.shard_count = shard_count
        self.backend = backend
        self._faults = faults
        self._latency_s = db_latency_s
        self.pool: BoundedPool[Connection] = BoundedPool(
            backend.connect,
            lambda conn: conn.close(),
            size=pool_size,
            timeout_s=pool_timeout_s,
            capacity=lambda configured: faults.pool_limit(shard_id, configured),
        )
        self._ready = False
        self._init_lock = asyncio.Lock()

    # --- queries --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Outside the span, so the span records the database's own error first."""
        try:
            yield
        except PoolTimeout as exc:
            raise ShardUnavailable(self.id, str(exc)) from exc
        except self.backend.errors as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ShardUnavailable(self.id, first_line[:200]) from exc

    @contextlib.contextmanager
    def _span(self, operation: str, collection: str) -> Iterator[ShardQuery]:
        """The shard span of one statement, inside the error mapping (so the span records
        the database's own error and the caller gets ``ShardUnavailable``)."""
        with (
            self._errors(),
            shard_span(
                self.id,
                self.backend.namespace,
                system=self.backend.system,
                operation=operation,
                collection=collection,
            ) as span,
        ):
            yield span

    async def _send(self, conn: Connection, query: Callable[[Connection], Awaitable[T]]) -> T:
        """One round-trip to the shard's database — where that database can go wrong."""
        # slow_shard simulates a slow database on this shard (a missing index, a saturated
        # disk): the query holds its connection longer, so the pool queues behind it too.
        # --db-latency-ms: a networked database's round trip, paid on every query.
        delay = self._latency_s + self._faults.shard_delay_s(self.id)
        if delay > 0:
            await asyncio.sleep(delay)
        # failing_shard simulates a flaky database: it fails with the backend's own error
        # (and a stack that looks like any other failed query).
        if self._faults.shard_fails(self.id):
            raise self.backend.failure()
        return await query(conn)

    async def run(
        self,
        operation: str,
        collection: str,
        query: Callable[[Connection], Awaitable[T]],
    ) -> T:
        """One query on a pooled connection, in one shard span (pool wait + query)."""
        with self._span(operation, collection) as span:
            started = time.perf_counter()
            await self._ready_or_raise()
            conn, result = await self._first_query(query, span, started)
            await self.pool.release(conn)
            return result

    async def _first_query(
        self,
        query: Callable[[Connection], Awaitable[T]],
        span: ShardQuery,
        started: float,
    ) -> tuple[Connection, T]:
        """Acquire a connection and run ``query`` on it; the caller then owns the connection.

        A pooled connection the server dropped while it sat idle (the database restarted or
        crashed and came back) fails at once; its idle siblings went with it. They are all
        discarded and ``query`` runs once more on a fresh connection, so a shard that is back
        answers at once instead of failing once per stale connection. Only a lost
        connection is retried (never an error the database reported, nor the failing_shard
        fault); ``query`` is a single statement or ``BEGIN``, so running it again is safe.
        """
        for attempt in (1, 2):
            conn = await self.pool.acquire()
            if attempt == 1:
                span.pool_wait_s = time.perf_counter() - started
            try:
                return conn, await self._send(conn, query)
            except BaseException as exc:
                lost = isinstance(exc, self.backend.errors) and conn.lost
                await self.pool.release(conn, broken=True)
                if not lost or attempt == 2:
                    raise
                dropped = await self.pool.discard_idle()
                _log.info(
                    "shard %d: connection lost; %d idle connection(s) dropped, retrying once",
                    self.id,
                    dropped,
                )
        raise AssertionError("unreachable")

    @contextlib.asynccontextmanager
    async def hold(self, collection: str = "items") -> AsyncIterator[HeldConnection]:
        """A transaction on one connection, rolled back unless committed (see checkout.py)."""
        with self._span("BEGIN", collection) as span:
            started = time.perf_counter()
            await self._ready_or_raise()
            conn, _ = await self._first_query(lambda c: c.begin(), span, started)
        held = HeldConnection(self, conn)
        try:
            yield held
        finally:
            await held.finish()

    # --- set-up ---------------------------------------------------------------------------

    async def ensure_ready(self) -> None:
        """Create and seed the tables once; a shard down at start is retried on first use."""
        with self._errors():
            await self._ready_or_raise()

    async def _ready_or_raise(self) -> None:
        if self._ready:
            return
        async with self._init_lock:
            if not self._ready:
                await self._initialize()
                self._ready = True

    async def _initialize(self) -> None:
        conn = await self.pool.acquire()
        broken = True
        try:
            await conn.begin(exclusive=True)
            for statement in DDL:
                await conn.execute(statement)
            meta = dict((await conn.execute("SELECT key, value FROM narrows_meta")).rows)
            layout = {"shard_count": str(self.shard_count), "shard_index": str(self.id)}
            if meta and {k: meta.get(k) for k in layout} != layout:
                await conn.rollback()
                broken = False
                raise ConfigError(
                    f"shard {self.id} ({self.backend.namespace}) was built as shard "
                    f"{meta.get('shard_index')} of {meta.get('shard_count')}, not {self.id} of "
                    f"{self.shard_count}; use the same --shards or a fresh database"
                )
            if not meta:
                await conn.executemany(
                    "INSERT INTO narrows_meta (key, value) VALUES (?, ?)", list(layout.items())
                )
                await conn.executemany(
                    "INSERT INTO items (id, name, price, stock, text) VALUES (?, ?, ?, ?, ?)",
                    [
                        (i.id, i.name, i.price, i.stock, i.text)
                        for i in map(make_item, self._seed_ids())
                    ],
                )
            await conn.commit()
            broken = False
        finally:
            await self.pool.release(conn, broken=broken)

    def _seed_ids(self) -> Iterator[int]:
        return (
            i for i in range(1, self._seed_items + 1) if shard_for(i, self.shard_count) == self.id
        )


class HeldConnection:
    """A shard connection inside an open transaction; each statement is its own shard span."""

    def __init__(self, store: ShardStore, conn: Connection) -> None:
        self.store = store
        self._conn: Connection | None = conn
        self.committed = False

    async def run(
        self, operation: str, collection: str, query: Callable[[Connection], Awaitable[T]]
    ) -> T:
        store = self.store
        if self._conn is None:
            raise RuntimeError("transaction already finished")
        with store._span(operation, collection):
            return await store._send(self._conn, query)

    async def commit(self) -> None:
        await self.run("COMMIT", "items", lambda conn: conn.commit())
        self.committed = True

    async def finish(self) -> None:
        """Roll back unless committed, and give the connection back."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        broken = False
        if not self.committed:
            try:
                await conn.rollback()
            except Exception:
                broken = True
        await self.store.pool.release(conn, broken=broken)


class Shards:
    """All shards of the service, and the routing of keys to them."""

    def __init__(self, stores: Sequence[ShardStore]) -> None:
        if not stores:
            raise ConfigError("at least one shard is needed")
        self.stores = list(stores)

    @classmethod
    def from_settings(
        cls,
        settings: DemoSettings,
        faults: Faults,
        *,
        folder: str = "demo",
        file_prefix: str = "shard",
        seed_items: int = 0,
    ) -> Shards:
        """The shards ``settings`` describe, with their pools: one PostgreSQL database per
        shard (``--shard-dsn``), else SQLite files ``<data-dir>/<folder>/<N>-shards/
        <file_prefix>_<i>.sqlite`` (each service of the micro topology has its own folder)."""
        backends: list[Backend]
        if settings.shard_dsns:
            backends = [PostgresBackend(dsn) for dsn in settings.expanded_dsns()]
        else:
            where = settings.data_dir / folder / f"{settings.shards}-shards"
            backends = [
                SqliteBackend(where / f"{file_prefix}_{i}.sqlite") for i in range(settings.shards)
            ]
        return cls(
            [
                ShardStore(
                    i,
                    settings.shards,
                    backend,
                    faults,
                    pool_size=settings.pool_size,
                    pool_timeout_s=settings.pool_timeout_s,
                    db_latency_s=settings.db_latency_ms / 1000.0,
                    seed_items=seed_items,
                )
                for i, backend in enumerate(backends)
            ]
        )

    def __len__(self) -> int:
        return len(self.stores)

    def __getitem__(self, shard_id: int) -> ShardStore:
        return self.stores[shard_id]

    def for_key(self, key: int) -> ShardStore:
        return self.stores[shard_for(key, len(self.stores))]

    def group(self, keys: Iterable[int]) -> dict[int, list[int]]:
        """Keys by owning shard, shards in ascending order (the order transactions take)."""
        groups: dict[int, list[int]] = {}
        for key in keys:
            groups.setdefault(shard_for(key, len(self.stores)), []).append(key)
        return dict(sorted(groups.items()))

    async def open(self) -> None:
        """Prepare every shard; one that is down now is retried when first needed."""
        results = await asyncio.gather(
            *(s.ensure_ready() for s in self.stores), return_exceptions=True
        )
        for store, result in zip(self.stores, results, strict=True):
            if isinstance(result, ConfigError):
                raise result
            if isinstance(result, BaseException):
                _log.warning("shard %d is not reachable at start: %s", store.id, result)

    async def close(self) -> None:
        for store in self.stores:
            await store.pool.close()
            await store.backend.close()
