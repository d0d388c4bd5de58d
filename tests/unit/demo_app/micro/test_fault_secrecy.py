"""The micro topology's faults stay out of the telemetry too: with slow_replica, retry_storm
and replica_down switched on through the gateway, no span, metric or log line of any of the
three services names one — except the "fault changed" lines the switches write."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from demo_app.faults import ALL_FAULTS, MICRO_FAULTS
from tests.support.demo import SpanCapture
from tests.support.micro import micro

SWITCHES = {
    "slow_replica": {"instance": 1, "delay_ms": 1},
    "retry_storm": {"retries": 3, "backoff_ms": 0, "error_rate": 1.0},
    "replica_down": {"instance": 0},
}


def _mentions_a_fault(text: str) -> bool:
    lowered = text.lower()
    return "fault" in lowered or any(name in lowered for name in ALL_FAULTS)


def test_no_span_metric_or_log_names_the_micro_faults(
    tmp_path: Path, spans: SpanCapture, caplog: pytest.LogCaptureFixture
) -> None:
    assert set(SWITCHES) == set(MICRO_FAULTS)
    caplog.set_level(logging.DEBUG)

    async def main() -> str:
        async with micro(tmp_path) as m:
            catalog = m.service.catalog
            for endpoint in catalog.balancer.endpoints:
                await catalog.check(endpoint)
            for name, params in SWITCHES.items():
                answer = await m.gateway.put(f"/admin/faults/{name}", json=params)
                assert answer.status_code == 200, answer.text
            m.router.down.add("catalog-0.test")  # what the supervisor does for replica_down
            statuses = {(await m.gateway.get(f"/items/{i}")).status_code for i in range(1, 12)}
            assert 503 in statuses  # every catalog call hits a hiccup: the storm is on
            await m.gateway.delete("/admin/faults/retry_storm")
            for i in range(1, 12):
                await m.gateway.get(f"/items/{i}")
            await m.gateway.post("/orders", json={"items": [{"id": 3}]})
            # One process: the three services share the registry /metrics shows.
            metrics = (await m.gateway.get("/metrics")).text
            await m.gateway.delete("/admin/faults")
            return metrics

    metrics = asyncio.run(main())

    captured = spans.spans()
    resends = [s for s in captured if (s.attributes or {}).get("http.request.resend_count")]
    assert resends, "the storm's retries should be in the spans"
    for span in captured:
        assert not _mentions_a_fault(span.name), span.name
        for key, value in (span.attributes or {}).items():
            assert not _mentions_a_fault(f"{key}={value}"), (span.name, key, value)
        for event in span.events:
            assert not _mentions_a_fault(event.name)
            for key, value in (event.attributes or {}).items():
                assert not _mentions_a_fault(f"{key}={value}"), (span.name, key, value)
        assert "/admin" not in str(span.attributes)
    assert "app_upstream_retries_total" in metrics
    assert not _mentions_a_fault(metrics)

    lines = [r.getMessage() for r in caplog.records if r.name.startswith("demo_app")]
    assert any("upstream ejected" in line for line in lines)
    fault_lines = [line for line in lines if _mentions_a_fault(line)]
    assert fault_lines, "switching faults writes 'fault changed' lines"
    assert all(line.startswith("fault changed: ") for line in fault_lines), fault_lines
