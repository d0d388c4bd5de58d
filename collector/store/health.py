"""Whether the store can take writes, so that receivers refuse early while it cannot.

The write-ahead log and DuckDB report each failed write (a full disk, an I/O error) and
each success. While a part is failing, receivers answer 503 with ``Retry-After`` before
reading a body: senders keep their data and retry, nothing is acknowledged that cannot be
kept, and the log is not flooded with one traceback per request. DuckDB failures are
retried by the writer itself, so while DuckDB fails every request is refused; nothing
else would try the write-ahead log again, so while it fails a request is let through
every ``PROBE_S`` to find out whether space has come back.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge

__all__ = ["PROBE_S", "StorageHealth"]

_log = logging.getLogger(__name__)
PROBE_S = 1.0
PARTS = ("wal", "duckdb")


class StorageHealth:
    def __init__(self, data_dir: Path, registry: CollectorRegistry) -> None:
        self._data_dir = data_dir
        self._lock = threading.Lock()
        self._since: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._gauge = Gauge(
            "narrows_storage_failing",
            "1 while writes to this part of the store fail (disk full, I/O error); ingest"
            " answers 503 meanwhile",
            ["part"],
            registry=registry,
        )
        for part in PARTS:
            self._gauge.labels(part=part).set(0)
        self._free = Gauge(
            "narrows_storage_free_bytes",
            "free bytes on the file system of the data directory",
            registry=registry,
        )
        self._free.set_function(self.free_bytes)

    def failed(self, part: str, exc: BaseException) -> None:
        """A write to ``part`` failed; logged once per episode, not once per request."""
        now = time.monotonic()
        with self._lock:
            first = part not in self._since
            if first:
                self._since[part] = now
            self._last[part] = now
        self._gauge.labels(part=part).set(1)
        if first:
            _log.error(
                "writes to the %s fail (%s); ingest answers 503 until they succeed again",
                "write-ahead log" if part == "wal" else "DuckDB store",
                exc,
            )

    def succeeded(self, part: str) -> None:
        with self._lock:
            since = self._since.pop(part, None)
            self._last.pop(part, None)
        if since is not None:
            self._gauge.labels(part=part).set(0)
            _log.warning(
                "writes to the %s succeed again after %.1fs",
                "write-ahead log" if part == "wal" else "DuckDB store",
                time.monotonic() - since,
            )

    def refusing(self) -> bool:
        """True when a request should be answered 503 without trying to store it."""
        if not self._last:
            return False
        with self._lock:
            if "duckdb" in self._last:
                return True
            last = self._last.get("wal")
        return last is not None and time.monotonic() - last < PROBE_S

    def failing(self) -> list[str]:
        with self._lock:
            return sorted(self._since)

    def free_bytes(self) -> float:
        try:
            st = os.statvfs(self._data_dir)
        except OSError:
            return float("nan")
        return float(st.f_bavail * st.f_frsize)
