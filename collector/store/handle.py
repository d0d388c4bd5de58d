"""The DuckDB database the collector writes and reads, reopened when DuckDB gives up on it.

A checkpoint that fails for lack of disk space makes DuckDB *invalidate* the database:
every later statement on any connection answers "database has been invalidated … must be
restarted". Rather than leaving the collector refusing ingest and failing queries until
someone restarts it, the writer closes every connection (DuckDB frees an instance only
when its last connection is closed) and opens the file again once there is room; DuckDB
replays its own log on open, and the writer retries what it had not committed
(store/writer.py). Readers take a fresh cursor per query, so they follow the new
connection by themselves.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

__all__ = ["StoreHandle", "invalidated"]


def invalidated(exc: BaseException) -> bool:
    """Whether DuckDB has invalidated the database (it must be reopened)."""
    return isinstance(exc, duckdb.FatalException) or "invalidated" in str(exc)


class StoreHandle:
    def __init__(
        self,
        path: Path,
        config: dict[str, Any],
        on_open: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    ) -> None:
        self._path = path
        self._config = config
        self._on_open = on_open
        self._lock = threading.Lock()
        self._cursors: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()
        self.generation = 0
        self.conn = self._open()

    def _open(self) -> duckdb.DuckDBPyConnection:
        conn = duckdb.connect(str(self._path), config=self._config)
        if self._on_open is not None:
            self._on_open(conn)
        return conn

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            cur = self.conn.cursor()
            self._cursors.add(cur)
            return cur

    def reopen(self) -> None:
        """Close every connection and open the file again; raises if it cannot (yet)."""
        with self._lock:
            for cur in list(self._cursors):
                with contextlib.suppress(duckdb.Error):
                    cur.close()
            with contextlib.suppress(duckdb.Error):
                self.conn.close()
            self._cursors = weakref.WeakSet()
            self.conn = self._open()
            self.generation += 1

    def close(self) -> None:
        with self._lock:
            for cur in list(self._cursors):
                with contextlib.suppress(duckdb.Error):
                    cur.close()
            with contextlib.suppress(duckdb.Error):
                self.conn.execute("CHECKPOINT")
            self.conn.close()
