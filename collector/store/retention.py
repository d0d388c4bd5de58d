"""Retention by age (counted from arrival) and by size, enforced while running.

Age counts from ``received_ns``, not from the telemetry's own timestamps, so a 2017
fixture loaded today is kept for the whole retention period. Size: when the data blocks in
use pass ``max_size``, the oldest arrivals are deleted until about 90% remain used; DuckDB
reuses the freed blocks, so the file stops growing while running, and a file left over the
limit is rewritten smaller at the next start (store/compact.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from collector.store.schema import TABLES

__all__ = ["Retention", "used_bytes"]

_DIGEST_WINDOW_NS = 3_600_000_000_000


def used_bytes(conn: duckdb.DuckDBPyConnection) -> int:
    row = conn.execute("SELECT block_size, used_blocks FROM pragma_database_size()").fetchone()
    return int(row[0]) * int(row[1]) if row else 0


@dataclass(frozen=True)
class Retention:
    max_age_ns: int = 0
    """0 keeps everything."""
    max_size: int = 0
    """Bytes of used DuckDB blocks; 0 means no limit."""
    every_s: float = 30.0

    def enforce(self, conn: duckdb.DuckDBPyConnection, now_ns: int) -> dict[str, int]:
        deleted: dict[str, int] = {}
        conn.execute(
            "DELETE FROM request_digests WHERE received_ns < ?", [now_ns - _DIGEST_WINDOW_NS]
        )
        if self.max_age_ns > 0:
            deleted = self._delete_before(conn, now_ns - self.max_age_ns)
        if self.max_size > 0 and used_bytes(conn) > self.max_size:
            excess = 1.0 - 0.9 * self.max_size / used_bytes(conn)
            row = conn.execute(
                "SELECT quantile_disc(r, ?) FROM (SELECT received_ns AS r FROM spans"
                " UNION ALL SELECT received_ns FROM logs"
                " UNION ALL SELECT received_ns FROM metric_points)",
                [min(0.9, max(0.05, excess))],
            ).fetchone()
            if row and row[0] is not None:
                for table, n in self._delete_before(conn, int(row[0]) + 1).items():
                    deleted[table] = deleted.get(table, 0) + n
                conn.execute("CHECKPOINT")
        return deleted

    @staticmethod
    def _delete_before(conn: duckdb.DuckDBPyConnection, cutoff_ns: int) -> dict[str, int]:
        deleted: dict[str, int] = {}
        for table, column in TABLES.items():
            if table == "request_digests":
                continue
            row = conn.execute(f"DELETE FROM {table} WHERE {column} < ?", [cutoff_ns]).fetchone()
            deleted[table] = int(row[0]) if row else 0
        return deleted
