"""Prometheus scrape receiver: pulls ``/metrics`` targets on an interval.

Asks for OpenMetrics (the only format that carries exemplars) and falls back to the text
format; the exposition goes through the same accept path as a pushed request, so it is in
the write-ahead log before it is counted, and parsed by prometheus-client (collector/
flatten/prom.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from collector.ingest import Kind, MalformedBody
from collector.pipeline import Overloaded, Pipeline, StorageUnavailable

__all__ = ["ScrapeTarget", "Scraper", "parse_target"]

_log = logging.getLogger(__name__)
ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


@dataclass(frozen=True)
class ScrapeTarget:
    url: str
    interval_s: float = 15.0
    job: str = "scrape"

    @property
    def instance(self) -> str:
        return urlsplit(self.url).netloc


def parse_target(spec: str) -> ScrapeTarget:
    """``URL[,interval]`` with the interval in seconds or with a unit (``5s``, ``1m``)."""
    url, _, interval = spec.partition(",")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--scrape {spec!r}: the target must be an http(s) URL")
    seconds = 15.0
    if interval.strip():
        text = interval.strip().lower()
        scale = 60.0 if text.endswith("m") else 1.0
        try:
            seconds = float(text.rstrip("sm")) * scale
        except ValueError:
            raise ValueError(f"--scrape {spec!r}: the interval must be like 15 or 15s") from None
        if not 0.1 <= seconds <= 3600:
            raise ValueError(f"--scrape {spec!r}: the interval must be between 0.1s and 1h")
    return ScrapeTarget(url.strip(), seconds)


class Scraper:
    def __init__(
        self, pipeline: Pipeline, targets: list[ScrapeTarget], max_body: int = 64 << 20
    ) -> None:
        self._pipeline = pipeline
        self._targets = targets
        self._max_body = max_body
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for t in self._targets:
            self._tasks.append(asyncio.create_task(self._loop(t), name=f"scrape {t.url}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _loop(self, target: ScrapeTarget) -> None:
        timeout = min(10.0, max(0.5, target.interval_s))
        async with httpx.AsyncClient(
            timeout=timeout, headers={"Accept": ACCEPT}, follow_redirects=True
        ) as client:
            while True:
                started = time.monotonic()
                await self.scrape_once(client, target)
                await asyncio.sleep(max(0.0, target.interval_s - (time.monotonic() - started)))

    async def scrape_once(self, client: httpx.AsyncClient, target: ScrapeTarget) -> bool:
        metrics = self._pipeline.metrics
        scraped_ns = time.time_ns()
        try:
            # Streamed under the same size limit as a pushed request (Prometheus has
            # body_size_limit for the same reason): a target answering gigabytes must not
            # take the collector's memory with it.
            async with client.stream("GET", target.url) as resp:
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > self._max_body:
                        break
        except httpx.HTTPError as exc:
            metrics.scrape_errors.labels(target=target.url).inc()
            _log.warning("scrape %s failed: %s", target.url, exc)
            return False
        if resp.status_code != 200:
            metrics.scrape_errors.labels(target=target.url).inc()
            _log.warning("scrape %s answered %d", target.url, resp.status_code)
            return False
        if len(body) > self._max_body:
            metrics.scrape_errors.labels(target=target.url).inc()
            _log.warning("scrape %s answered over %d bytes; dropped", target.url, self._max_body)
            return False
        meta = {
            "content_type": resp.headers.get("content-type", ""),
            "job": target.job,
            "instance": target.instance,
            "scraped_ns": scraped_ns,
        }
        try:
            await self._pipeline.accept(
                Kind.SCRAPE, bytes(body), time.time_ns(), 0, "prometheus", meta, dedupe=False
            )
        except (MalformedBody, Overloaded, StorageUnavailable) as exc:
            metrics.scrape_errors.labels(target=target.url).inc()
            _log.warning("scrape %s not stored: %s", target.url, exc)
            return False
        return True
