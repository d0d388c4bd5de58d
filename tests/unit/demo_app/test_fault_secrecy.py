"""Ground truth stays out of the telemetry: no span, metric or log names an active fault,
except the one "fault changed" line an operator's switch writes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from demo_app.faults import FAULTS
from demo_app.settings import DemoSettings
from tests.support.demo import SpanCapture, asgi_demo

SWITCHES = {
    "slow_shard": {"shard": 0, "delay_ms": 1},
    "failing_shard": {"shard": 1, "error_rate": 0.5},
    "cache_outage": {},
    "cache_ttl": {"seconds": 0.01},
    "hot_keys": {"keys": 3},
    "sequential_fanout": {},
    "pool_size": {"shard": 2, "size": 1},
    "cpu_burn": {"route": "/search", "ms": 1},
}


def _mentions_a_fault(text: str) -> bool:
    lowered = text.lower()
    return "fault" in lowered or any(name in lowered for name in FAULTS)


def test_no_span_metric_or_log_names_the_active_faults(
    settings: Callable[..., DemoSettings],
    spans: SpanCapture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert set(SWITCHES) == set(FAULTS)
    caplog.set_level(logging.DEBUG)

    async def main() -> str:
        async with asgi_demo(settings()) as (client, _):
            for name, params in SWITCHES.items():
                assert (await client.put(f"/admin/faults/{name}", json=params)).status_code == 200
            await client.get("/admin/faults")
            for i in range(1, 30):
                await client.get(f"/items/{i}")
                await client.put(
                    f"/items/{i}", json={"name": "n", "price": 1.5, "stock": 5, "text": "t"}
                )
            await client.get("/items?ids=1,2,3,4,5,6,7,8")
            await client.get("/search?q=river")
            await client.post("/orders", json={"items": [{"id": 11}, {"id": 12}]})
            metrics = (await client.get("/metrics")).text
            for name in SWITCHES:
                await client.delete(f"/admin/faults/{name}")
            return metrics

    metrics = asyncio.run(main())

    captured = spans.spans()
    assert captured, "the requests should have produced spans"
    for span in captured:
        assert not _mentions_a_fault(span.name), span.name
        for key, value in (span.attributes or {}).items():
            assert not _mentions_a_fault(f"{key}={value}"), (span.name, key, value)
        for event in span.events:
            for key, value in (event.attributes or {}).items():
                assert not _mentions_a_fault(f"{key}={value}"), (span.name, key, value)
        assert "/admin" not in str(span.attributes)
    assert not _mentions_a_fault(metrics)

    service_records = [r for r in caplog.records if r.name.startswith("demo_app")]
    fault_lines = [r.getMessage() for r in service_records if _mentions_a_fault(r.getMessage())]
    assert fault_lines, "switching faults writes 'fault changed' lines"
    assert all(line.startswith("fault changed: ") for line in fault_lines)
    assert len(fault_lines) == 2 * len(SWITCHES)  # one per switch on, one per switch off
