"""The accept path shared by every receiver: dedupe → decode → WAL (fsync) → writer.

A request is acknowledged once its body is in the write-ahead log on disk (not when
DuckDB has committed it: queries wait for that instead, see store/writer.py). A retry of
an already stored request (same body digest) is answered like the original and not stored
again; two requests carrying different spans with the same ids are both stored.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from collector.ingest import Decoded, Kind, MalformedBody, decode, redact
from collector.selfmetrics import SelfMetrics
from collector.series_limit import SeriesLimiter, drop_series
from collector.store.gate import MemoryGate
from collector.store.health import StorageHealth
from collector.store.wal import Record, WriteAheadLog
from collector.store.writer import Batch, StoreWriter

__all__ = ["Accepted", "Overloaded", "Pipeline", "StorageUnavailable", "body_digest"]

DEDUPE_ENTRIES = 100_000
SERIES_LIMIT_MESSAGE = (
    "points of new series over the series limit (NARROWS_MAX_SERIES_PER_METRIC, NARROWS_MAX_SERIES)"
)


class Overloaded(Exception):
    """No room in the memory bound; answered 503 with Retry-After."""


class StorageUnavailable(Exception):
    """The store cannot take writes now (a full disk); answered 503 with Retry-After."""


@dataclass(frozen=True)
class Accepted:
    accepted: int
    rejected: int
    message: str
    duplicate: bool = False


def body_digest(kind: Kind, body: bytes) -> bytes:
    return hashlib.blake2b(bytes([kind]) + body, digest_size=16).digest()


class Pipeline:
    def __init__(
        self,
        wal: WriteAheadLog,
        writer: StoreWriter,
        gate: MemoryGate,
        metrics: SelfMetrics,
        health: StorageHealth,
        limiter: SeriesLimiter | None = None,
    ) -> None:
        self.wal = wal
        self.health = health
        self.limiter = limiter
        self.writer = writer
        self.gate = gate
        self.metrics = metrics
        self._seen: OrderedDict[bytes, asyncio.Future[Accepted] | Accepted] = OrderedDict()

    def remember(self, digest: bytes) -> None:
        """A digest stored before this process started (loaded from DuckDB or the WAL)."""
        self._seen[digest] = Accepted(0, 0, "")
        while len(self._seen) > DEDUPE_ENTRIES:
            self._seen.popitem(last=False)

    async def accept(
        self,
        kind: Kind,
        body: bytes,
        received_ns: int,
        reserved: int,
        receiver: str,
        meta: dict[str, Any] | None = None,
        dedupe: bool = True,
    ) -> Accepted:
        """Store ``body`` durably; raises MalformedBody or Overloaded. Releases ``reserved``
        (the body's share of the memory gate) unless the batch carries it to the writer."""
        signal = kind.signal
        digest = body_digest(kind, body) if dedupe else None
        if digest is not None:
            prior = self._seen.get(digest)
            if prior is not None:
                self.gate.release(reserved)
                result = prior if isinstance(prior, Accepted) else await asyncio.shield(prior)
                self.metrics.deduplicated.labels(receiver=receiver).inc()
                return Accepted(result.accepted, result.rejected, result.message, True)
        # Secrets are masked before the body is logged or stored; the digest above is of
        # the body as sent, so a retry still matches.
        kind, body = redact(kind, body)
        try:
            decoded = decode(kind, body, received_ns, meta or {})
        except MalformedBody:
            self.gate.release(reserved)
            self.metrics.refused(signal, receiver, "malformed", 1)
            raise
        for _reason, n in decoded.rejected.reasons.items():
            self.metrics.refused(signal, receiver, "invalid", n)
        if signal == "metrics" and decoded.point_keys:
            meta = self._limit_series(decoded, receiver, meta)
        result = Accepted(decoded.accepted, decoded.rejected.count, decoded.rejected.message())
        if decoded.accepted == 0:
            self.gate.release(reserved)
            return result
        return await self._store(
            kind, body, received_ns, reserved, receiver, meta, digest, decoded, result
        )

    def _limit_series(
        self, decoded: Decoded, receiver: str, meta: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """Drop the points of series over the limits; their keys go into the log record."""
        if self.limiter is None:
            return meta
        points = decoded.tables["metric_points"]
        refused = self.limiter.admit(points.column("family").to_pylist(), decoded.point_keys)
        if not refused:
            return meta
        points, exemplars, n = drop_series(
            points,
            decoded.tables["exemplars"],
            decoded.point_keys,
            decoded.exemplar_keys,
            set(refused),
        )
        decoded.tables["metric_points"], decoded.tables["exemplars"] = points, exemplars
        decoded.accepted = max(0, decoded.accepted - n)
        decoded.rejected.add(SERIES_LIMIT_MESSAGE, n)
        self.metrics.refused("metrics", receiver, "series_limit", n)
        return {**(meta or {}), "drop_series": refused}

    async def _store(
        self,
        kind: Kind,
        body: bytes,
        received_ns: int,
        reserved: int,
        receiver: str,
        meta: dict[str, Any] | None,
        digest: bytes | None,
        decoded: Decoded,
        result: Accepted,
    ) -> Accepted:
        extra = decoded.nbytes
        if not self.gate.reserve(extra):
            self.gate.release(reserved)
            self.metrics.enqueue_failed(kind.signal, decoded.accepted)
            raise Overloaded
        self.metrics.queue_bytes.set(self.gate.used)
        batch = Batch(decoded, digest, received_ns, reserved + extra)
        loop = asyncio.get_running_loop()
        pending: asyncio.Future[Accepted] = loop.create_future()
        if digest is not None:
            self._seen[digest] = pending
            while len(self._seen) > DEDUPE_ENTRIES:
                self._seen.popitem(last=False)

        def to_writer(pos: int) -> None:
            batch.position = pos
            self.writer.submit(batch)

        record = Record(int(kind), received_ns, digest or b"", meta or {}, body)
        try:
            await asyncio.wrap_future(self.wal.append(record, to_writer))
        except OSError:
            if digest is not None:
                self._seen.pop(digest, None)
            # A retry of this very body may be waiting on it: it gets the 503 too.
            pending.set_exception(StorageUnavailable())
            pending.exception()  # retrieved: no "never retrieved" warning when none waits
            self.gate.release(batch.reserved)
            self.metrics.refused(kind.signal, receiver, "storage_unavailable", decoded.accepted)
            raise StorageUnavailable from None
        # Durable now (the WAL is synced). Read-your-writes is the query side's job: a
        # query first waits for the writer to commit what was acknowledged before it
        # (store/writer.py ``read_barrier``), so senders are not held up by DuckDB commits
        # and the writer can commit large groups.
        if digest is not None:
            self._seen[digest] = result
        pending.set_result(result)
        self.metrics.accepted(kind.signal, receiver, decoded.accepted)
        return result
