"""Collector stopped: the app's latency and statuses do not change, nothing reaches the app."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.instrumentation.conftest import AppStarter, get_trace, traceparent
from tests.support.procs import wait_for
from tests.support.stack import CollectorProc, collector_proc

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROUNDS, PER_ROUND = 5, 120


def p99_ms(client: httpx.Client, n: int) -> float:
    latencies = []
    for i in range(n):
        started = time.perf_counter()
        resp = client.get(f"/items/{i % 50}")
        latencies.append(time.perf_counter() - started)
        assert resp.status_code == 200
    latencies.sort()
    return latencies[int(n * 0.99) - 1] * 1000


def test_app_p99_with_the_collector_stopped_stays_within_10_percent(
    collector: CollectorProc, start_app: AppStarter, tmp_path: Path
) -> None:
    common = {
        "NARROWS_TEST_INSTRUMENT": "1",
        "OTEL_SERVICE_NAME": "shop",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_BSP_MAX_QUEUE_SIZE": "256",  # small, so the down app really overflows
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "64",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2000",  # each failed export gives up after ~2 s
    }
    _, up_url = start_app("app-up", {**common, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_url})
    with collector_proc(tmp_path / "doomed", name="doomed-collector") as doomed:
        down_proc, down_url = start_app(
            "app-down", {**common, "OTEL_EXPORTER_OTLP_ENDPOINT": doomed.otlp_url}
        )
        trace_id, header = traceparent(1, "dd")
        httpx.get(f"{down_url}/items/1", headers={"traceparent": header}, timeout=5)
        get_trace(doomed, trace_id, want=2)  # it was exporting fine...
    # ...and now its collector is gone.

    up, down = [], []
    t0 = time.monotonic()
    with (
        httpx.Client(base_url=up_url, timeout=10) as a,
        httpx.Client(base_url=down_url, timeout=10) as b,
    ):
        p99_ms(a, 50), p99_ms(b, 50)  # warm-up
        for r in range(ROUNDS):  # interleaved, order alternating, so drift hits both alike
            pair = [(up, a), (down, b)] if r % 2 == 0 else [(down, b), (up, a)]
            for out, client in pair:
                out.append(p99_ms(client, PER_ROUND))
        metrics = b.get("/metrics").text

    print(f"p99 ms up {up} down {down}; took {time.monotonic() - t0:.1f}s")
    up_p99, down_p99 = statistics.median(up), statistics.median(down)
    assert down_p99 <= up_p99 * 1.10, f"p99 up {up} ms vs collector down {down} ms"
    dropped = [
        line
        for line in metrics.splitlines()
        if line.startswith("narrows_telemetry_dropped_total") and 'signal="traces"' in line
    ]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in dropped) > 0
    wait_for(lambda: "exporting traces to" in down_proc.log(), 15, "the export warning", down_proc)
    time.sleep(3)  # more failed exports happen meanwhile; they must not add lines
    log = down_proc.log()
    assert "Traceback" not in log
    assert log.count("exporting traces to") == 1  # one warning, not a flood
    assert '"logger": "opentelemetry.exporter' not in log  # the per-retry lines are folded
