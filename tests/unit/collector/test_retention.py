"""Retention bounds the store: by age of arrival, and by size — the file stops growing while
the collector runs, and a file left over the limit is rewritten below it at start-up."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from benchmarks._payloads import trace_request
from collector.ingest import Kind, decode
from collector.store.compact import compact_store
from collector.store.retention import Retention, used_bytes
from collector.store.schema import create_schema
from collector.store.writer import Batch, insert_batches

MB = 1 << 20


def _fill(
    conn: duckdb.DuckDBPyConnection, rounds: int, start: int, retention: Retention
) -> list[int]:
    """Insert ``rounds`` requests of 2,048 spans, enforcing retention after each; file sizes."""
    sizes = []
    for i in range(start, start + rounds):
        received = time.time_ns() - 10**12 + i * 10**6
        decoded = decode(Kind.OTLP_TRACES_PROTO, trace_request(2048, seed=i), received, {})
        insert_batches(conn, [Batch(decoded, None, received, position=i + 1)])
        retention.enforce(conn, time.time_ns())
        conn.execute("CHECKPOINT")
        sizes.append(Path(conn.execute("PRAGMA database_list").fetchall()[0][2]).stat().st_size)
    return sizes


def _count(conn: duckdb.DuckDBPyConnection, sql: str = "SELECT count(*) FROM spans") -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row else -1


def test_size_retention_stops_growth_and_a_restart_compacts_below_a_lower_limit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "narrows.duckdb"
    conn = duckdb.connect(str(path), config={"threads": 1})
    create_schema(conn)
    retention = Retention(max_size=6 * MB)
    sizes = _fill(conn, 36, 0, retention)
    # Deletes free space a row group at a time, so the bound holds give or take a few
    # blocks; freed blocks are reused, and free blocks at the end are cut off the file.
    assert used_bytes(conn) <= 6.6 * MB
    assert max(sizes[18:]) <= 2 * 6 * MB, f"the file kept growing: {sizes}"
    kept = _count(conn)
    newest = _count(conn, "SELECT max(received_ns) FROM spans")
    conn.close()

    lower = Retention(max_size=4 * MB)
    assert compact_store(path, lower, {"threads": 1})
    assert path.stat().st_size <= 4 * MB + 64 * 1024  # the limit counts data blocks, + header
    conn = duckdb.connect(str(path))
    assert 0 < _count(conn) < kept, "the oldest arrivals went, the newest stayed"
    assert _count(conn, "SELECT max(received_ns) FROM spans") == newest
    assert _count(conn, "SELECT value FROM ingest_state WHERE name = 'wal_position'") == 36
    conn.close()
    assert not compact_store(path, lower, {"threads": 1}), "nothing left to reclaim"


def test_age_counts_from_arrival_not_from_the_telemetry_timestamps(tmp_path: Path) -> None:
    conn = duckdb.connect(str(tmp_path / "narrows.duckdb"))
    create_schema(conn)
    now = time.time_ns()
    for received in (now - 7200 * 10**9, now - 60 * 10**9):
        # Spans from 2023 (fixtures are old): kept or dropped by when they *arrived*.
        decoded = decode(Kind.OTLP_TRACES_PROTO, trace_request(64, seed=received), received, {})
        insert_batches(conn, [Batch(decoded, None, received)])
    deleted = Retention(max_age_ns=3600 * 10**9).enforce(conn, now)
    assert deleted["spans"] == 64
    assert _count(conn) == 64
    assert _count(conn, "SELECT min(received_ns) FROM spans") == now - 60 * 10**9
