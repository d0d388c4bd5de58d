"""The single writer: drains decoded batches into DuckDB in large Arrow appends.

Batches arrive in write-ahead-log order (store/wal.py). Each transaction inserts a group
of batches and records the log position it reached in ``ingest_state``, so data and
position commit together: replay after a crash starts exactly where the store stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from collector.ingest import Decoded
from collector.selfmetrics import SelfMetrics
from collector.store.dedupe import SPAN_KEY_SQL, SpanDedupe
from collector.store.gate import MemoryGate
from collector.store.handle import StoreHandle, invalidated
from collector.store.health import StorageHealth
from collector.store.retention import Retention

__all__ = ["Batch", "StoreWriter", "insert_batches", "read_barrier"]

_log = logging.getLogger(__name__)
_TRACE_ID = "((trace_hi::UHUGEINT << 64) | trace_lo::UHUGEINT)"
_MAX_GROUP_ROWS = 130_000
_MIN_GROUP_ROWS = 50_000
_LINGER_S = 0.25
_BUSY_S = 0.3
_RETRY_FIRST_S = 0.25
_RETRY_MAX_S = 2.0


@dataclass
class Batch:
    """One acknowledged request on its way into the store."""

    decoded: Decoded
    digest: bytes | None
    received_ns: int
    reserved: int = 0
    position: int = 0


def _concat(tables: list[pa.Table]) -> pa.Table | None:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return None
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def insert_batches(
    conn: duckdb.DuckDBPyConnection, batches: list[Batch], dedupe: SpanDedupe | None = None
) -> dict[str, int]:
    """Insert ``batches`` in one transaction with the last log position; rows per table.

    With ``dedupe``, spans already stored (same content key, see store/dedupe.py) are left
    out; ``duplicate_spans`` in the result counts them.
    """
    by_table: dict[str, list[pa.Table]] = {}
    for b in batches:
        for name, table in b.decoded.tables.items():
            by_table.setdefault(name, []).append(table)
    counts: dict[str, int] = {}
    fresh_keys = None
    conn.begin()
    try:
        for name, tables in by_table.items():
            table = _concat(tables)
            if table is None:
                continue
            if name == "spans" and dedupe is not None:
                sizes = [t.num_rows for t in tables]
                table, fresh_keys = _without_duplicates(conn, table, sizes, dedupe)
                counts["duplicate_spans"] = sum(len(t) for t in tables) - table.num_rows
                if not table.num_rows:
                    continue
            counts[name] = table.num_rows
            conn.register("incoming", table)
            try:
                _insert(conn, name)
            finally:
                conn.unregister("incoming")
        digests = [b for b in batches if b.digest]
        if digests:
            # One statement (executemany runs one per row, ~0.5 ms each).
            conn.execute(
                "INSERT INTO request_digests SELECT unnest(?::BLOB[]), unnest(?::BIGINT[])",
                [[b.digest for b in digests], [b.received_ns for b in digests]],
            )
        pos = max(b.position for b in batches)
        if pos:
            conn.execute("INSERT OR REPLACE INTO ingest_state VALUES ('wal_position', ?)", [pos])
        conn.commit()
    except Exception:
        # A failed COMMIT has already ended the transaction; keep the original error.
        with contextlib.suppress(duckdb.Error):
            conn.rollback()
        raise
    if dedupe is not None and fresh_keys is not None:
        # Only once committed: a failed group must not make its spans look stored.
        dedupe.add(fresh_keys, time.time_ns())
    return counts


def _not_yet_committed(cur: duckdb.DuckDBPyConnection, group: list[Batch]) -> list[Batch]:
    """The batches of ``group`` past the log position DuckDB has committed."""
    row = cur.execute("SELECT value FROM ingest_state WHERE name = 'wal_position'").fetchone()
    committed = int(row[0]) if row else 0
    return [b for b in group if b.position > committed or not b.position]


def _without_duplicates(
    conn: duckdb.DuckDBPyConnection, table: pa.Table, sizes: list[int], dedupe: SpanDedupe
) -> tuple[pa.Table, Any]:
    """``table`` (requests of ``sizes`` rows, concatenated) minus the spans stored before or
    sent by an earlier request of the group; and the keys of the spans kept."""
    conn.register("incoming", table)
    try:
        got = conn.execute(
            f"SELECT {SPAN_KEY_SQL} AS k FROM (SELECT {_TRACE_ID} AS trace_id,"
            " * EXCLUDE (trace_hi, trace_lo) FROM incoming)"
        ).fetchnumpy()
    finally:
        conn.unregister("incoming")
    keys = np.asarray(got["k"], dtype=np.uint64)
    batch_of = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    fresh = dedupe.fresh(keys, batch_of)
    if fresh.all():
        return table, keys
    return table.filter(pa.array(fresh)), keys[fresh]


def _insert(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    if name == "spans":
        conn.execute(
            "INSERT INTO spans BY NAME SELECT * EXCLUDE (trace_hi, trace_lo),"
            f" {_TRACE_ID} AS trace_id, end_ns - start_ns AS duration_ns FROM incoming"
        )
        conn.execute(
            f"INSERT INTO trace_index SELECT {_TRACE_ID}, min(received_ns), max(received_ns),"
            " min(start_ns), max(end_ns) FROM incoming GROUP BY 1"
        )
    elif name == "logs":
        conn.execute(
            "INSERT INTO logs BY NAME SELECT * EXCLUDE (trace_hi, trace_lo),"
            f" CASE WHEN trace_hi IS NULL THEN NULL ELSE {_TRACE_ID} END AS trace_id"
            " FROM incoming"
        )
    elif name == "resources":
        conn.execute(
            "INSERT OR IGNORE INTO resources"
            " SELECT DISTINCT ON (resource_id) resource_id, service_name, attributes,"
            " dropped_attributes FROM incoming"
        )
    elif name == "scopes":
        conn.execute(
            "INSERT OR IGNORE INTO scopes"
            " SELECT DISTINCT ON (scope_id) scope_id, name, version, attributes,"
            " dropped_attributes FROM incoming"
        )
    elif name in ("metric_points", "exemplars"):
        conn.execute(f"INSERT INTO {name} BY NAME SELECT * FROM incoming")
    else:
        raise ValueError(f"unknown table {name!r}")


class StoreWriter:
    """Owns the write connection; ``submit`` never blocks (the gate bounds the queue)."""

    def __init__(
        self,
        store: StoreHandle,
        gate: MemoryGate,
        metrics: SelfMetrics,
        retention: Retention,
        on_commit: Callable[[int], object],
        health: StorageHealth,
        dedupe: SpanDedupe | None = None,
    ) -> None:
        self._store = store
        self._cur = store.cursor()
        self._generation = store.generation
        self._reopen = False
        self._health = health
        self._stopping = False
        self._gave_up = False
        self._dedupe = dedupe
        self._gate = gate
        self._metrics = metrics
        self._retention = retention
        self._on_commit = on_commit
        self._queue: queue.Queue[Batch | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="narrows-writer", daemon=True)
        self._running = threading.Event()
        self._running.set()
        self._pending = 0
        self._lock = threading.Lock()
        self._last_commit = 0.0
        self.hurry = False
        """Set by a waiting query: commit what is queued now instead of lingering."""
        self.submitted = 0
        """Log position of the last batch handed over (acknowledged)."""
        self.committed = 0
        """Log position up to which batches are committed (or failed): queryable."""

    def start(self) -> None:
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        with self._lock:
            self._pending += 1
            self.submitted = max(self.submitted, batch.position)
        self._metrics.queue_batches.set(self._pending)
        self._queue.put(batch)

    @property
    def pending(self) -> int:
        return self._pending

    def pause(self) -> None:
        """Hold writes (the overload test stalls the writer this way); receivers keep
        acknowledging until the memory gate fills, then answer 503."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Store everything accepted, then stop (a group that keeps failing is tried once
        more, then left to the write-ahead log: replayed at the next start)."""
        self._stopping = True
        self._running.set()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        last_retention = time.monotonic()
        while True:
            try:
                first = self._queue.get(timeout=1.0)
            except queue.Empty:
                first = None
                if time.monotonic() - last_retention >= self._retention.every_s:
                    self._enforce_retention()
                    last_retention = time.monotonic()
                continue
            if first is None:
                return
            self._running.wait()
            group = [first]
            rows = first.decoded.accepted
            stop = False
            # Group commit: under sustained load, linger briefly for more batches, since a
            # DuckDB insert costs far less per row in large groups. A lone request after a
            # quiet spell is committed at once.
            busy = time.monotonic() - self._last_commit < _BUSY_S
            deadline = time.monotonic() + (_LINGER_S if busy else 0.0)
            while rows < _MAX_GROUP_ROWS:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    wait = deadline - time.monotonic()
                    if rows >= _MIN_GROUP_ROWS or wait <= 0 or self.hurry:
                        break
                    try:
                        nxt = self._queue.get(timeout=min(wait, 0.01))
                    except queue.Empty:
                        continue
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
                rows += nxt.decoded.accepted
            self.hurry = False
            self._commit(group)
            if time.monotonic() - last_retention >= self._retention.every_s:
                self._enforce_retention()
                last_retention = time.monotonic()
            if stop:
                return

    def _commit(self, group: list[Batch]) -> None:
        """Insert ``group``, retrying while DuckDB fails (a full disk): the batches were
        acknowledged, and committing later groups first would move the recorded log
        position past them, so replay would never bring them back. Meanwhile the group
        keeps its memory reservation, receivers answer 503 (store/health.py), and the
        commit is retried with back-off until space returns."""
        if self._gave_up:
            # An earlier group is only in the log: committing this one would record a log
            # position past it. Both are replayed at the next start.
            self._release(group)
            return
        wait = _RETRY_FIRST_S
        failures = 0
        whole = group
        while True:
            t0 = time.perf_counter()
            try:
                if self._reopen:
                    # DuckDB invalidated the database (a checkpoint failed on a full disk):
                    # open it again; this fails, and is retried, while there is no room.
                    self._store.reopen()
                    self._reopen = False
                    self._metrics.store_reopened.inc()
                    _log.warning("reopened the DuckDB store after it was invalidated")
                cur = self._cursor()
                if failures:
                    # The failure may have come after the commit reached DuckDB's log.
                    group = _not_yet_committed(cur, group)
                counts = insert_batches(cur, group, self._dedupe) if group else {}
                break
            except Exception as exc:
                failures += 1
                if failures == 1:
                    for signal in {b.decoded.signal for b in group}:
                        n = sum(b.decoded.accepted for b in group if b.decoded.signal == signal)
                        self._metrics.send_failed(signal, n)
                self._health.failed("duckdb", exc)
                if invalidated(exc):
                    self._reopen = True
                if self._stopping and failures > 1:
                    _log.error(
                        "stopping with %d batches not in DuckDB; the write-ahead log keeps"
                        " them for the next start",
                        len(group),
                    )
                    self._gave_up = True
                    self._release(whole)
                    return
                time.sleep(wait)
                wait = min(_RETRY_MAX_S, 2 * wait)
        group = whole
        self._health.succeeded("duckdb")
        self._metrics.write_seconds.observe(time.perf_counter() - t0)
        self._last_commit = time.monotonic()
        for signal, table in (("traces", "spans"), ("logs", "logs"), ("metrics", "metric_points")):
            if table in counts:
                self._metrics.sent(signal, counts[table])
        if counts.get("duplicate_spans"):
            self._metrics.duplicate_spans.inc(counts["duplicate_spans"])
        self._release(group)
        pos = max(b.position for b in group)
        if pos:
            try:
                self._on_commit(pos)
            except OSError:
                _log.exception("dropping committed write-ahead-log segments failed")

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """The writer's cursor on the current connection (a new one after a reopen)."""
        if self._generation != self._store.generation:
            self._cur = self._store.cursor()
            self._generation = self._store.generation
        return self._cur

    def _release(self, group: list[Batch]) -> None:
        for b in group:
            self._gate.release(b.reserved)
        with self._lock:
            self._pending -= len(group)
            self.committed = max(self.committed, max(b.position for b in group))
        self._metrics.queue_batches.set(self._pending)
        self._metrics.queue_bytes.set(self._gate.used)

    def _enforce_retention(self) -> None:
        try:
            deleted = self._retention.enforce(self._cursor(), time.time_ns())
        except Exception:
            _log.exception("retention pass failed")
            return
        for table, n in deleted.items():
            if n:
                self._metrics.retention_deleted.labels(table=table).inc(n)


async def read_barrier(writer: StoreWriter, timeout_s: float = 1.0) -> None:
    """Until everything acknowledged so far is committed (at most ``timeout_s``).

    Queries call this first, so a client that queries after its 2xx sees its data —
    read-your-writes without making every sender wait for a DuckDB commit.
    """
    target = writer.submitted
    if writer.committed >= target:
        return
    writer.hurry = True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while writer.committed < target and loop.time() < deadline:
        await asyncio.sleep(0.002)
