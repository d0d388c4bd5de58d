"""The single writer: drains a bounded queue of span batches into DuckDB, one commit per group.

Receivers wait for the commit before acknowledging (group commit), so a 2xx means the
spans are on disk.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from collector.store.schema import SPAN_COLUMNS

__all__ = ["QueueFull", "SpanBatch", "SpanWriter"]

_log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The writer is behind; the receiver answers 503 with Retry-After."""


@dataclass
class SpanBatch:
    columns: dict[str, list[object]]
    done: Future[int]

    @property
    def size(self) -> int:
        return len(self.columns["trace_id"])


class SpanWriter:
    """Owns the write connection; ``submit`` is thread-safe and never blocks."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, capacity: int) -> None:
        self._conn = conn
        self._queue: queue.Queue[SpanBatch | None] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._run, name="narrows-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, columns: dict[str, list[object]]) -> Future[int]:
        fut: Future[int] = Future()
        try:
            self._queue.put_nowait(SpanBatch(columns, fut))
        except queue.Full:
            raise QueueFull from None
        return fut

    def stop(self, timeout: float = 10.0) -> None:
        """Drain what was accepted, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < 64:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._commit(group)
                    return
                group.append(nxt)
            self._commit(group)

    def _commit(self, group: list[SpanBatch]) -> None:
        merged: dict[str, list[object]] = {c: [] for c in SPAN_COLUMNS}
        for batch in group:
            for col in SPAN_COLUMNS:
                merged[col].extend(batch.columns[col])
        try:
            table = pa.table(merged)
            self._conn.register("incoming_spans", table)
            try:
                self._conn.execute(
                    f"INSERT INTO spans SELECT {', '.join(SPAN_COLUMNS)} FROM incoming_spans"
                )
            finally:
                self._conn.unregister("incoming_spans")
        except Exception as exc:  # a failed write must fail the requests, not the writer
            _log.exception("writing %d spans failed", len(merged["trace_id"]))
            for batch in group:
                batch.done.set_exception(exc)
            return
        for batch in group:
            batch.done.set_result(batch.size)
