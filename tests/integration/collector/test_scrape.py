"""The scrape receiver pulls an OpenMetrics endpoint and keeps samples and exemplars."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server

from collector.receivers.scrape import ACCEPT, Scraper, ScrapeTarget, parse_target
from narrows.ports import free_port
from tests.support.collector import live_collector

pytestmark = pytest.mark.integration


def test_parse_target_accepts_an_interval_and_refuses_junk() -> None:
    assert parse_target("http://127.0.0.1:8000/metrics,5s").interval_s == 5.0
    assert parse_target("http://127.0.0.1:8000/metrics").interval_s == 15.0
    with pytest.raises(ValueError, match="http"):
        parse_target("ftp://x/metrics")
    with pytest.raises(ValueError, match="interval"):
        parse_target("http://x/metrics,fast")


def test_scraped_histogram_keeps_samples_and_exemplars(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    hist = Histogram(
        "http_server_request_duration_seconds",
        "latency",
        ["http_route"],
        buckets=[0.1, 0.5],
        registry=registry,
    )
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    hist.labels("/items/{key}").observe(
        0.07, exemplar={"trace_id": trace_id, "span_id": "b7ad6b7169203331"}
    )
    hist.labels("/items/{key}").observe(0.3)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with live_collector(tmp_path) as c:
            scraper = Scraper(c.collector.pipeline, [])
            target = ScrapeTarget(f"http://127.0.0.1:{port}/metrics", 1.0)

            async def once() -> bool:
                async with httpx.AsyncClient(headers={"Accept": ACCEPT}) as client:
                    return await scraper.scrape_once(client, target)

            import asyncio

            assert asyncio.run(once())
            c.wait_stored()
            series = c.query(
                "/api/narrows/metrics/series",
                name="http_server_request_duration_seconds_count",
                match='{"http_route": "/items/{key}"}',
            ).json()["series"]
            assert series[0]["points"][0][1] == 2.0
            assert series[0]["labels"]["instance"] == f"127.0.0.1:{port}"
            ex = c.query(
                "/api/narrows/exemplars", name="http_server_request_duration_seconds"
            ).json()
            assert [e["traceId"] for e in ex["exemplars"]] == [trace_id]
            assert ex["exemplars"][0]["labels"]["le"] == "0.1"
    finally:
        server.shutdown()
        thread.join(5)


def test_a_target_answering_over_the_size_limit_is_dropped_and_counted(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    gauge = Gauge("big", "many series", ["i"], registry=registry)
    for i in range(2000):
        gauge.labels(str(i)).set(i)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with live_collector(tmp_path) as c:
            scraper = Scraper(c.collector.pipeline, [], max_body=10_000)
            target = ScrapeTarget(f"http://127.0.0.1:{port}/metrics", 1.0)

            async def once() -> bool:
                async with httpx.AsyncClient(headers={"Accept": ACCEPT}) as client:
                    return await scraper.scrape_once(client, target)

            assert not asyncio.run(once())
            metrics = c.query("/metrics").text
            assert f'narrows_scrape_errors_total{{target="{target.url}"}} 1.0' in metrics
            assert c.query("/api/narrows/stats").json()["metric_points"]["count"] == 0
    finally:
        server.shutdown()
        thread.join(5)
