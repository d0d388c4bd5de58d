"""The write-ahead log: raw request bodies, fsync'd in groups before any acknowledgement.

Why a WAL rather than acknowledging after the DuckDB commit: a DuckDB commit of a large
Arrow batch takes tens of milliseconds, and a sender waiting on it would idle; an append
plus one ``fdatasync`` shared by every request that arrived meanwhile takes about a
millisecond. The decoded batch goes on to the writer, which commits it to DuckDB together
with the log position it reached (``ingest_state``). On start, records after that position
are decoded again and inserted (store/writer.py), so a ``kill -9`` loses nothing that was
acknowledged, and nothing is stored twice.

Record layout: ``magic "NWL1" | u32 length | u32 crc32 | i64 received_ns | u8 kind |
16-byte digest | u16 meta length | meta (JSON) | body``; the CRC covers everything after
itself. A torn record at the end of the last segment (a crash mid-write, never
acknowledged) is cut off on open.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.store.health import StorageHealth

__all__ = ["Record", "WriteAheadLog", "position"]

_log = logging.getLogger(__name__)
_MAGIC = b"NWL1"
_HEAD = struct.Struct("<4sII")
_FIXED = struct.Struct("<qB16sH")
_SEGMENT_SHIFT = 40


def position(segment: int, offset: int) -> int:
    """One integer for (segment, offset), ordered like the log."""
    return (segment << _SEGMENT_SHIFT) | offset


@dataclass
class Record:
    kind: int
    received_ns: int
    digest: bytes
    meta: dict[str, Any]
    body: bytes

    def encode(self) -> bytes:
        meta = json.dumps(self.meta, separators=(",", ":")).encode() if self.meta else b""
        rest = _FIXED.pack(self.received_ns, self.kind, self.digest.ljust(16, b"\0"), len(meta))
        payload = rest + meta + self.body
        return _HEAD.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload

    @classmethod
    def decode(cls, payload: bytes) -> Record:
        received_ns, kind, digest, meta_len = _FIXED.unpack_from(payload)
        start = _FIXED.size
        meta = json.loads(payload[start : start + meta_len]) if meta_len else {}
        return cls(kind, received_ns, digest, meta, payload[start + meta_len :])


@dataclass
class _Pending:
    data: bytes
    done: Future[int]
    then: Callable[[int], None] | None


class WriteAheadLog:
    """Segments ``wal-<n>.log`` in ``directory``; one thread appends and syncs."""

    def __init__(self, directory: Path, segment_bytes: int = 64 << 20, fsync: bool = True) -> None:
        self._dir = directory
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="narrows-wal", daemon=True)
        self._fd = -1
        self._segment = 0
        self._offset = 0
        self._lock = threading.Lock()
        self.sync_seconds: Callable[[float], None] = lambda _s: None
        self.health: StorageHealth | None = None
        """Told of every failed and successful append (receivers refuse while it fails)."""

    # -- start-up ---------------------------------------------------------------------------
    def segments(self) -> list[int]:
        return sorted(
            int(p.stem.split("-")[1]) for p in self._dir.glob("wal-*.log") if p.stem[4:].isdigit()
        )

    def _path(self, segment: int) -> Path:
        return self._dir / f"wal-{segment:08d}.log"

    def replay(self, after: int) -> Iterator[tuple[int, Record]]:
        """Records whose end position is beyond ``after``, in order, as (end position, record).

        A torn or corrupt tail of the last segment is truncated; corruption elsewhere stops
        the replay of that segment with an error logged (nothing after it was acknowledged
        in order, so nothing acknowledged is skipped silently).
        """
        self._dir.mkdir(parents=True, exist_ok=True)
        segs = self.segments()
        for i, seg in enumerate(segs):
            path = self._path(seg)
            data = path.read_bytes()
            pos = 0
            while pos < len(data):
                if len(data) - pos < _HEAD.size:
                    break
                magic, length, crc = _HEAD.unpack_from(data, pos)
                end = pos + _HEAD.size + length
                payload = data[pos + _HEAD.size : end]
                if magic != _MAGIC or end > len(data) or zlib.crc32(payload) != crc:
                    break
                if position(seg, end) > after:
                    yield position(seg, end), Record.decode(payload)
                pos = end
            if pos < len(data):
                if i == len(segs) - 1:
                    _log.warning("cutting a torn record off %s at byte %d", path.name, pos)
                    with path.open("r+b") as fh:
                        fh.truncate(pos)
                else:
                    _log.error("corrupt record in %s at byte %d; later records replayed", path, pos)

    def start(self) -> None:
        """Open a fresh segment after the existing ones and start the append thread."""
        self._dir.mkdir(parents=True, exist_ok=True)
        segs = self.segments()
        self._segment = (segs[-1] + 1) if segs else 1
        self._open_segment()
        self._thread.start()

    def _open_segment(self) -> None:
        self._fd = os.open(self._path(self._segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._offset = 0
        if self._fsync:
            dir_fd = os.open(self._dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    # -- running ----------------------------------------------------------------------------
    def append(self, record: Record, then: Callable[[int], None] | None = None) -> Future[int]:
        """Queue ``record``; the future resolves to its end position once it is on disk.

        ``then(position)`` runs on the log thread right after the sync, in log order, before
        the future resolves (the writer's queue is fed from there, so it sees log order).
        """
        fut: Future[int] = Future()
        self._queue.put(_Pending(record.encode(), fut, then))
        return fut

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            group = [first]
            stop = False
            while True:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
            self._write_group(group)
            if stop:
                break
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _write_group(self, group: list[_Pending]) -> None:
        """Append and sync ``group``; on failure cut the file back to where the group began.

        A failed ``write`` (a full disk) can leave part of a record behind; were the next
        group appended after it, replay would stop at the torn record and never reach
        acknowledged records beyond it. So the segment is truncated to its length before
        the group (which needs no space), and every request of the group is refused.
        """
        ends: list[int] = []
        try:
            with self._lock:
                if self._fd < 0 or self._offset >= self._segment_bytes:
                    self._rotate()
                start = self._offset
                try:
                    for p in group:
                        view = memoryview(p.data)
                        while view:
                            written = os.write(self._fd, view)
                            view = view[written:]
                        self._offset += len(p.data)
                        ends.append(position(self._segment, self._offset))
                    self._sync()
                except OSError:
                    self._cut_back(start)
                    raise
        except OSError as exc:
            if self.health is not None:
                self.health.failed("wal", exc)
            else:
                _log.exception("write-ahead log append failed")
            for p in group:
                p.done.set_exception(exc)
            return
        if self.health is not None:
            self.health.succeeded("wal")
        for p, end in zip(group, ends, strict=True):
            if p.then is not None:
                p.then(end)
            p.done.set_result(end)

    def _rotate(self) -> None:
        if self._fd >= 0:
            self._sync()
            os.close(self._fd)
            self._fd = -1
            self._segment += 1
        self._open_segment()

    def _cut_back(self, length: int) -> None:
        """Truncate the current segment to ``length``; if even that fails, leave the torn
        segment behind (replay stops at its tear and goes on with the next segment) and
        start a new one at the next append."""
        self._offset = length
        try:
            os.ftruncate(self._fd, length)
        except OSError:
            _log.exception("cannot truncate %s; continuing in a new segment", self._segment)
            os.close(self._fd)
            self._fd = -1
            self._segment += 1

    def _sync(self) -> None:
        if self._fsync:
            t0 = time.perf_counter()
            os.fdatasync(self._fd)
            self.sync_seconds(time.perf_counter() - t0)

    def current_segment(self) -> int:
        return self._segment

    def drop_before(self, committed: int) -> int:
        """Delete whole segments that end at or before ``committed``; returns how many."""
        seg = committed >> _SEGMENT_SHIFT
        dropped = 0
        for s in self.segments():
            if s < seg and s != self._segment:
                self._path(s).unlink(missing_ok=True)
                dropped += 1
        return dropped

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._dir.glob("wal-*.log"))

    def stop(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)
