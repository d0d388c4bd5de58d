"""Shrinking the DuckDB file at start-up, when it holds far more blocks than data.

DuckDB reuses the blocks that retention frees, so while the collector runs its file grows
no further than its peak; but it never gives them back to the file system. A file over
``max_size`` (a burst before retention caught up, or a lower ``--max-size`` than before)
is therefore rewritten at start-up: retention first, then ``COPY FROM DATABASE`` into a
fresh file, then an atomic rename over the old one.

Why at start-up only: the file must not be open anywhere else (queries and the writer hold
the running collector's connection), and the write-ahead-log position lives in the
database itself (``ingest_state``), so the copy carries it along and replay after the swap
starts exactly where it would have. A crash mid-copy leaves the old file untouched (the
half-written copy is removed on the next start).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import duckdb

from collector.store.retention import Retention, used_bytes
from collector.store.schema import create_schema

__all__ = ["compact_store"]

_log = logging.getLogger(__name__)
#: Not worth a rewrite below this much reclaimable space (and below a tenth of the file).
_MIN_SAVING = 1 << 20


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def compact_store(path: Path, retention: Retention, config: dict[str, Any]) -> bool:
    """Enforce retention, then rewrite ``path`` if it is over ``retention.max_size`` and a
    rewrite saves space; True when the file was replaced.

    Up to three passes: the fresh copy's block count measures the live data exactly (the
    old file's counts include partly deleted row groups), so a copy still over the limit
    gets another retention pass and copy.
    """
    path.with_name(path.name + ".compact").unlink(missing_ok=True)
    replaced = False
    for _ in range(3):
        if retention.max_size <= 0 or not path.exists():
            break
        if path.stat().st_size <= retention.max_size:
            break
        try:
            if not _rewrite(path, retention, config):
                break
        except (duckdb.Error, OSError):
            # A full disk or an unreadable file: start on the file as it is (a corrupt
            # file then fails with DuckDB's own message, as it would have without this).
            _log.exception("compacting %s failed; keeping it as it is", path)
            path.with_name(path.name + ".compact").unlink(missing_ok=True)
            break
        replaced = True
    return replaced


def _rewrite(path: Path, retention: Retention, config: dict[str, Any]) -> bool:
    tmp = path.with_name(path.name + ".compact")
    t0 = time.monotonic()
    before = path.stat().st_size
    conn = duckdb.connect(str(path), config=config)
    try:
        create_schema(conn)
        retention.enforce(conn, time.time_ns())
        conn.execute("CHECKPOINT")
        if before - used_bytes(conn) < max(_MIN_SAVING, before // 10):
            return False
        row = conn.execute("SELECT current_database()").fetchone()
        name = str(row[0]) if row else path.stem
        conn.execute(f"ATTACH {_quote(tmp)} AS narrows_compact")
        conn.execute(f'COPY FROM DATABASE "{name}" TO narrows_compact')
        conn.execute("DETACH narrows_compact")
    finally:
        conn.close()
    wal = path.with_name(path.name + ".wal")
    if wal.exists() and wal.stat().st_size > 0:
        # Not everything reached the file: keep the original, never lose committed data.
        _log.warning("not compacting %s: its DuckDB WAL was not checkpointed", path)
        tmp.unlink(missing_ok=True)
        return False
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    _log.info(
        "compacted %s from %.1f MB to %.1f MB in %.1fs",
        path.name,
        before / 1e6,
        path.stat().st_size / 1e6,
        time.monotonic() - t0,
    )
    return True
