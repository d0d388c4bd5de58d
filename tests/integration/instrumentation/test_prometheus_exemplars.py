"""A private Prometheus scrapes an instrumented FastAPI app; its exemplars point at real traces."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.integration.instrumentation.conftest import AppStarter, attrs, get_trace
from tests.support.stack import CollectorProc

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BUCKETS = 'http_server_request_duration_seconds_bucket{http_route="/items/{item_id}"}'


def test_query_exemplars_returns_trace_ids_stored_in_the_collector(
    collector: CollectorProc, start_app: AppStarter, prometheus_factory: Any
) -> None:
    _, url = start_app(
        "shop",
        {
            "NARROWS_TEST_INSTRUMENT": "1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_url,
            "OTEL_SERVICE_NAME": "shop",
        },
    )
    prom = prometheus_factory([url.removeprefix("http://")])
    with httpx.Client(base_url=url, timeout=5) as client:
        for i in range(1, 21):
            assert client.get(f"/items/{i}").status_code == 200

    def exemplars() -> list[dict[str, Any]]:
        now = time.time()
        resp = httpx.get(
            f"{prom.url}/api/v1/query_exemplars",
            params={
                "query": BUCKETS,
                "start": now - 300,
                "end": now + 60,
            },
            timeout=5,
        )
        resp.raise_for_status()
        return [e for series in resp.json()["data"] for e in series["exemplars"]]

    deadline = time.monotonic() + 30
    found: list[dict[str, Any]] = []
    while not found and time.monotonic() < deadline:
        found = exemplars()
        time.sleep(0.5)
    assert found, "Prometheus stored no exemplar for the instrumented route"
    counts = prom.query('http_server_request_duration_seconds_count{http_route="/items/{item_id}"}')
    assert float(counts[0]["value"][1]) == 20  # type: ignore[index]

    trace_ids = {e["labels"]["trace_id"] for e in found}
    for trace_id in trace_ids:
        spans = get_trace(collector, trace_id, want=2)
        server = [s for _, s in spans if s["kind"] == 2]
        assert len(server) == 1
        assert server[0]["name"] == "GET /items/{item_id}"
        assert {e["labels"]["span_id"] for e in found if e["labels"]["trace_id"] == trace_id} == {
            server[0]["spanId"]
        }
        assert attrs(server[0])["http.route"] == "/items/{item_id}"
