"""An in-process collector on free ports, for tests that need its internals (pausing the
writer, reading its store) or start many collectors quickly."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from collector.app import Collector, make_servers
from collector.settings import CollectorSettings
from narrows.ports import free_port

__all__ = ["LiveCollector", "live_collector", "wait_ingested"]


@dataclass
class LiveCollector:
    collector: Collector
    settings: CollectorSettings

    @property
    def otlp_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.otlp_port}"

    @property
    def zipkin_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.zipkin_port}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.query_port}"

    def wait_stored(self, timeout: float = 10.0) -> None:
        """Until every acknowledged batch is committed to DuckDB."""
        wait_ingested(self.collector, timeout)

    def query(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.query_url + path, params=params, timeout=30)


def wait_ingested(collector: Collector, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while collector.writer.pending > 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{collector.writer.pending} batches still pending")
        time.sleep(0.01)


@contextmanager
def live_collector(data_dir: Path, **overrides: Any) -> Iterator[LiveCollector]:
    settings = CollectorSettings.from_env(
        {},
        data_dir=data_dir,
        otlp_port=free_port(),
        zipkin_port=free_port(),
        query_port=free_port(),
        **overrides,
    )
    collector = Collector.build(settings)
    servers = make_servers(collector)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def main() -> None:
        started.set()
        await asyncio.gather(*(s.serve() for s in servers))

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(5)
    deadline = time.monotonic() + 10
    while not all(s.started for s in servers):
        if time.monotonic() > deadline:
            raise AssertionError("collector servers did not start")
        time.sleep(0.01)
    try:
        yield LiveCollector(collector, settings)
    finally:
        for s in servers:
            s.should_exit = True
        thread.join(10)
        loop.close()
        collector.close()
