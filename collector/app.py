"""Wires receivers, the writer and the query API into servers, and runs them in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from collector.query.jaeger_v3 import JaegerV3Api
from collector.receivers.otlp import OtlpReceiver
from collector.settings import CollectorSettings
from collector.store.reader import SpanReader
from collector.store.schema import create_schema
from collector.store.writer import SpanWriter

__all__ = ["Collector", "serve"]

_log = logging.getLogger(__name__)


@dataclass
class Collector:
    """The collector's parts, built from settings; ``close`` drains the writer."""

    settings: CollectorSettings
    conn: duckdb.DuckDBPyConnection
    writer: SpanWriter
    otlp_app: Starlette
    query_app: Starlette

    @classmethod
    def build(cls, settings: CollectorSettings) -> Collector:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        conn = duckdb.connect(str(settings.db_path))
        create_schema(conn)
        writer = SpanWriter(conn.cursor(), settings.queue_capacity)
        reader = SpanReader(conn)
        otlp_app = Starlette(routes=OtlpReceiver(writer).routes())

        async def healthz(_: Request) -> JSONResponse:
            return JSONResponse({"status": "ok"})

        query_app = Starlette(routes=[Route("/healthz", healthz), *JaegerV3Api(reader).routes()])
        return cls(settings, conn, writer, otlp_app, query_app)

    def close(self) -> None:
        self.writer.stop()
        self.conn.close()


class _Server(uvicorn.Server):
    """uvicorn server that leaves signal handling to ``serve`` (we run several at once)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: CollectorSettings) -> None:
    """Run the OTLP and query servers until SIGINT/SIGTERM, then drain and close."""
    collector = Collector.build(settings)
    collector.writer.start()
    servers = [
        _Server(
            uvicorn.Config(
                app,
                host=settings.listen,
                port=port,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
        for app, port in (
            (collector.otlp_app, settings.otlp_port),
            (collector.query_app, settings.query_port),
        )
    ]
    loop = asyncio.get_running_loop()

    def _stop() -> None:
        for s in servers:
            s.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _stop)
    try:
        await asyncio.gather(*(s.serve() for s in servers))
    finally:
        collector.close()
