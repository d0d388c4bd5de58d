"""Builds the collector from settings and runs its servers in one process.

Start-up order matters for durability: open DuckDB, replay the write-ahead log past the
position DuckDB committed, then start the log and the writer threads, then listen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from collector.auth import BearerAuth
from collector.ingest import Kind, MalformedBody, decode
from collector.pipeline import Pipeline
from collector.query.aggregates import AggregatesApi
from collector.query.jaeger_v3 import JaegerV3Api
from collector.query.params import Bounds
from collector.query.runner import QueryRunner
from collector.query.signals import SignalsApi
from collector.receivers.otlp import OtlpReceiver
from collector.receivers.refusal import RefusalKnob, refusal_counter
from collector.receivers.scrape import Scraper, parse_target
from collector.receivers.zipkin import ZipkinReceiver
from collector.selfmetrics import SelfMetrics
from collector.series_limit import SeriesLimiter
from collector.settings import CollectorSettings
from collector.store.compact import compact_store
from collector.store.dedupe import SpanDedupe
from collector.store.gate import MemoryGate
from collector.store.handle import StoreHandle
from collector.store.health import StorageHealth
from collector.store.retention import Retention, used_bytes
from collector.store.schema import create_schema
from collector.store.wal import WriteAheadLog
from collector.store.writer import Batch, StoreWriter, insert_batches, read_barrier

__all__ = ["Collector", "serve"]

_log = logging.getLogger(__name__)
_REPLAY_GROUP_ROWS = 100_000


def _config(settings: CollectorSettings) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if settings.duckdb_threads > 0:
        config["threads"] = settings.duckdb_threads
    if settings.duckdb_memory:
        config["memory_limit"] = settings.duckdb_memory
    return config


def replay(
    conn: duckdb.DuckDBPyConnection, wal: WriteAheadLog, dedupe: SpanDedupe | None = None
) -> tuple[int, list[bytes]]:
    """Insert every logged request DuckDB does not have yet; (records replayed, digests)."""
    row = conn.execute("SELECT value FROM ingest_state WHERE name = 'wal_position'").fetchone()
    committed = int(row[0]) if row else 0
    group: list[Batch] = []
    rows = 0
    replayed = 0
    digests: list[bytes] = []
    for end, rec in wal.replay(committed):
        digest = rec.digest if any(rec.digest) else None
        try:
            decoded = decode(Kind(rec.kind), rec.body, rec.received_ns, rec.meta)
        except (MalformedBody, ValueError):
            _log.exception("skipping an undecodable write-ahead-log record")
            continue
        group.append(Batch(decoded, digest, rec.received_ns, position=end))
        if digest:
            digests.append(digest)
        rows += decoded.accepted
        replayed += 1
        if rows >= _REPLAY_GROUP_ROWS:
            insert_batches(conn, group, dedupe)
            group, rows = [], 0
    if group:
        insert_batches(conn, group, dedupe)
    return replayed, digests


@dataclass
class Collector:
    """The collector's parts; ``close`` stores everything acknowledged, then stops."""

    settings: CollectorSettings
    store: StoreHandle
    wal: WriteAheadLog
    writer: StoreWriter
    pipeline: Pipeline
    metrics: SelfMetrics
    otlp_app: ASGIApp
    zipkin_app: ASGIApp
    query_app: ASGIApp

    @classmethod
    def build(cls, settings: CollectorSettings) -> Collector:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        retention = Retention(settings.retention_ns, settings.max_size)
        compact_store(settings.db_path, retention, _config(settings))
        store = StoreHandle(settings.db_path, _config(settings), on_open=create_schema)
        conn = store.conn
        wal = WriteAheadLog(settings.wal_dir, fsync=settings.wal_fsync)
        t0 = time.monotonic()
        dedupe = SpanDedupe()
        loaded = dedupe.load(conn, time.time_ns())
        _log.info("span dedupe window: %d keys in %.1fs", loaded, time.monotonic() - t0)
        t0 = time.monotonic()
        replayed, digests = replay(conn, wal, dedupe)
        if replayed:
            _log.info(
                "replayed %d write-ahead-log records in %.1fs", replayed, time.monotonic() - t0
            )
        metrics = SelfMetrics()
        gate = MemoryGate(settings.queue_bytes)
        metrics.queue_capacity.set(settings.queue_bytes)
        health = StorageHealth(settings.data_dir, metrics.registry)
        writer = StoreWriter(store, gate, metrics, retention, wal.drop_before, health, dedupe)
        wal.sync_seconds = metrics.wal_sync_seconds.observe
        wal.health = health
        limiter = SeriesLimiter(settings.max_series_per_metric, settings.max_series)
        pipeline = Pipeline(wal, writer, gate, metrics, health, limiter)
        for (digest,) in conn.execute(
            "SELECT digest FROM request_digests ORDER BY received_ns DESC LIMIT 100000"
        ).fetchall()[::-1]:
            pipeline.remember(bytes(digest))
        for digest in digests:
            pipeline.remember(digest)
        wal.start()
        writer.start()
        bounds = Bounds(max_range_ns=settings.query_max_range_ns)
        token = settings.token

        otlp_app: ASGIApp = Starlette(
            routes=OtlpReceiver(pipeline, settings.max_request_bytes).routes()
        )
        zipkin_app: ASGIApp = Starlette(
            routes=ZipkinReceiver(pipeline, settings.max_request_bytes).routes()
        )
        if settings.test_refuse_ratio > 0:
            knob = (
                settings.test_refuse_ratio,
                settings.test_refuse_for_s,
                settings.test_refuse_every_s,
                refusal_counter(metrics.registry),
            )
            otlp_app = RefusalKnob(otlp_app, *knob, "otlp", seed=1)
            zipkin_app = RefusalKnob(zipkin_app, *knob, "zipkin", seed=2)
        collector = cls(
            settings,
            store,
            wal,
            writer,
            pipeline,
            metrics,
            BearerAuth(otlp_app, token, otlp=True),
            BearerAuth(zipkin_app, token),
            otlp_app,
        )
        collector.query_app = BearerAuth(collector._query_app(bounds), token)
        return collector

    def _query_app(self, bounds: Bounds) -> Starlette:
        runner = QueryRunner(
            self.store.cursor,
            self.settings.query_timeout_s,
            barrier=lambda: read_barrier(self.writer),
        )

        async def healthz(_: Request) -> JSONResponse:
            return JSONResponse({"status": "ok"})

        async def metrics(_: Request) -> Response:
            self.metrics.queue_bytes.set(self.pipeline.gate.used)
            return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

        return Starlette(
            routes=[
                Route("/healthz", healthz),
                Route("/metrics", metrics),
                *JaegerV3Api(runner, bounds).routes(),
                *AggregatesApi(runner, bounds).routes(),
                *SignalsApi(runner, bounds, self.stats).routes(),
            ]
        )

    def stats(self, cur: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        """``/api/narrows/stats``: what the store holds and how far ingest has got."""
        out: dict[str, Any] = {}
        for name, table, t in (
            ("spans", "spans", "start_ns"),
            ("logs", "logs", "time_ns"),
            ("metric_points", "metric_points", "time_ns"),
            ("exemplars", "exemplars", "time_ns"),
        ):
            n, lo, hi, rlo, rhi = cur.execute(
                f"SELECT count(*), min({t}), max({t}), min(received_ns), max(received_ns)"
                f" FROM {table}"
            ).fetchone() or (0, None, None, None, None)
            out[name] = {
                "count": n,
                "oldest_ns": lo,
                "newest_ns": hi,
                "oldest_received_ns": rlo,
                "newest_received_ns": rhi,
            }
        (traces,) = cur.execute("SELECT count(DISTINCT trace_id) FROM trace_index").fetchone() or (
            0,
        )
        out["traces"] = {"count": traces}
        db = self.settings.db_path
        out["storage"] = {
            "file_bytes": db.stat().st_size if db.exists() else 0,
            "used_bytes": used_bytes(cur),
            "wal_bytes": self.wal.size_bytes(),
            "max_size_bytes": self.settings.max_size,
            "free_bytes": self.pipeline.health.free_bytes(),
            "failing": self.pipeline.health.failing(),
            "retention_s": self.settings.retention_ns / 1e9,
        }
        out["ingest"] = {
            "pending_batches": self.writer.pending,
            "queued_bytes": self.pipeline.gate.used,
            "queue_capacity_bytes": self.pipeline.gate.capacity,
        }
        return out

    def close(self) -> None:
        self.wal.stop()
        self.writer.stop()
        self.store.close()


class _Server(uvicorn.Server):
    """uvicorn server that leaves signal handling to ``serve`` (we run several at once)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def make_servers(collector: Collector) -> list[_Server]:
    s = collector.settings
    return [
        _Server(
            uvicorn.Config(
                app,
                host=s.listen,
                port=port,
                log_level="warning",
                access_log=False,
                lifespan="off",
                limit_concurrency=1000,
            )
        )
        for app, port in (
            (collector.otlp_app, s.otlp_port),
            (collector.zipkin_app, s.zipkin_port),
            (collector.query_app, s.query_port),
        )
    ]


async def serve(settings: CollectorSettings) -> None:
    """Run every server until SIGINT/SIGTERM, then store what was accepted and close."""
    targets = [parse_target(t) for t in settings.scrape]
    collector = Collector.build(settings)
    servers = make_servers(collector)
    scraper = Scraper(collector.pipeline, targets, settings.max_request_bytes)
    loop = asyncio.get_running_loop()

    def _stop() -> None:
        for s in servers:
            s.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _stop)
    try:
        scraper.start()
        await asyncio.gather(*(s.serve() for s in servers))
    finally:
        await scraper.stop()
        collector.close()
