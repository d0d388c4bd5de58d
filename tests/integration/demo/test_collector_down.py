"""Scenario 4, backend down and the app fine: one demo process serves load while its
collector is stopped and started again, phase after phase (up, down, up, down, …).

Holds: with the collector down the demo's p99 stays within 10 % of its own p99 with the
collector up (the same process, so no two instances differ by placement; phases
alternate, so the machine's drift hits both alike); every request answers 200; its memory
stays flat however long the outage; it counts what it drops and warns once; and each time
the collector returns, the demo's spans reach it again — without restarting the demo.

The short form runs in CI; the soak form (``make soak``) runs many longer phases.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from narrows.ports import free_port
from tests.support.procs import rss_mb
from tests.support.prom import metric_sum
from tests.support.stack import CollectorProc, DemoProc, collector_proc, demo_proc

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ITEMS = 500
#: Small queues so the short form overflows them many times over; the app's memory must
#: not care how long the collector stays away.
ENV = {
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    "OTEL_BLRP_SCHEDULE_DELAY": "200",
    "OTEL_BSP_MAX_QUEUE_SIZE": "512",
    "OTEL_BLRP_MAX_QUEUE_SIZE": "512",
    "OTEL_EXPORTER_OTLP_TIMEOUT": "2000",  # a failed export gives up after ~2 s
    "NARROWS_ACCESS_LOG": "true",  # logs flow (and fail) too, as under narrows up
}


@dataclass
class Phases:
    up_p99_ms: list[float] = field(default_factory=list)
    down_p99_ms: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    recovery_s: list[float] = field(default_factory=list)
    requests: int = 0


def _url(i: int) -> str:
    """Every tenth request a multi-key read, the rest single reads, over all items."""
    key = i % ITEMS + 1
    return f"/items?ids={key},{key % ITEMS + 1}" if i % 10 == 9 else f"/items/{key}"


def p99_ms(client: httpx.Client, n: int, offset: int) -> float:
    """``n`` sequential requests; each must answer 200."""
    latencies = []
    for i in range(n):
        url = _url(offset + i)
        started = time.perf_counter()
        resp = client.get(url)
        latencies.append(time.perf_counter() - started)
        assert resp.status_code == 200, (url, resp.status_code, resp.text[:200])
    latencies.sort()
    return latencies[max(0, int(n * 0.99) - 1)] * 1000


def _stored(col: CollectorProc, trace_id: str) -> bool:
    try:  # a collector just started may be slow to answer its first queries: ask again
        resp = httpx.get(f"{col.query_url}/api/v3/traces/{trace_id}", timeout=2)
    except httpx.TimeoutException:
        return False
    return resp.status_code == 200


def _dir(tmp: Path, name: str) -> Path:
    d = tmp / name / "data"
    d.mkdir(parents=True)
    return d


def spans_flow_again(demo: DemoProc, col: CollectorProc, cycle: int) -> float:
    """Requests with known trace ids until one is stored; seconds since the collector was
    ready (it was waited for just before)."""
    ready = time.monotonic()
    for n in range(1000):
        trace_id = f"c{cycle:03x}{n:028x}"
        header = {"traceparent": f"00-{trace_id}-{'2' * 16}-01"}
        assert httpx.get(f"{demo.url}/items/{n % ITEMS + 1}", headers=header).status_code == 200
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            if _stored(col, trace_id):
                return time.monotonic() - ready
            time.sleep(0.05)
        assert time.monotonic() - ready < 30, "no span reached the returned collector in 30 s"
    raise AssertionError("unreachable")


def dropped_counted(client: httpx.Client, within_s: float = 15.0) -> str:
    """The demo's metrics once both signals have counted drops, or after ``within_s``.

    Spans overflow their queue at once, but the access logs of a phase fit theirs: they
    count only when an export gives up, about a second (first try, one back-off) after it
    began. A collector that came back within that second took the retry, so earlier
    outages may have lost no log at all; the last outage lasts, so its logs must count.
    """
    deadline = time.monotonic() + within_s
    while True:
        metrics = client.get("/metrics").text
        counted = [
            metric_sum(metrics, "narrows_telemetry_dropped_total", signal=signal) > 0
            for signal in ("traces", "logs")
        ]
        if all(counted) or time.monotonic() > deadline:
            return metrics
        time.sleep(0.2)


def run_phases(tmp: Path, cycles: int, per_phase: int) -> Phases:
    out = Phases()
    began = time.monotonic()
    port = free_port()
    env = {**ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}
    with (
        demo_proc(_dir(tmp, "demo"), "--seed-items", str(ITEMS), env=env) as demo,
        httpx.Client(base_url=demo.url, timeout=10) as client,
    ):
        pid = demo.proc.proc.pid
        offset = 0
        for cycle in range(cycles):
            data = _dir(tmp, f"collector-{cycle}")
            with collector_proc(data, name=f"collector-{cycle}", otlp_port=port) as col:
                out.recovery_s.append(spans_flow_again(demo, col, cycle))
                p99_ms(client, 50, offset)  # settle: the first batches after a return
                out.up_p99_ms.append(p99_ms(client, per_phase, offset))
            # ...and now it is gone: the same requests again.
            out.down_p99_ms.append(p99_ms(client, per_phase, offset))
            out.rss_mb.append(rss_mb(pid))
            offset += per_phase
            out.requests += 2 * per_phase + 50
        metrics = dropped_counted(client)
        assert demo.proc.proc.pid == pid
        assert demo.proc.alive()
    assert metric_sum(metrics, "narrows_telemetry_dropped_total", signal="traces") > 0
    assert metric_sum(metrics, "narrows_telemetry_dropped_total", signal="logs") > 0
    log = demo.proc.log()
    assert "Traceback" not in log
    # one warning per incident, repeated at most every 5 minutes: never a flood
    assert 1 <= log.count("exporting traces to") <= 1 + (time.monotonic() - began) // 300
    return out


def check(out: Phases, max_rss_growth_mb: float) -> None:
    up, down = statistics.median(out.up_p99_ms), statistics.median(out.down_p99_ms)
    # the first outage fills the queues; memory must not grow after that
    growth = max(out.rss_mb) - out.rss_mb[0]
    figures = {
        "scenario": 4,
        "requests": out.requests,
        "p99_ms_collector_up": round(up, 2),
        "p99_ms_collector_down": round(down, 2),
        "rss_mb_after_first_outage": round(out.rss_mb[0], 1),
        "rss_mb_max": round(max(out.rss_mb), 1),
        "recovery_s_max": round(max(out.recovery_s[1:]), 2),
    }
    print("FIGURES " + json.dumps(figures))
    assert down <= up * 1.10, f"p99 collector up {out.up_p99_ms} ms vs down {out.down_p99_ms}"
    assert growth < max_rss_growth_mb, f"RSS grew {growth:.1f} MiB: {out.rss_mb}"
    assert max(out.recovery_s[1:]) < 10  # the exporter's timeout (2 s) plus its back-off


def test_the_demo_rides_out_collector_outages_and_reconnects_by_itself(tmp_path: Path) -> None:
    check(run_phases(tmp_path, cycles=4, per_phase=300), max_rss_growth_mb=15)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_long_collector_outages_keep_the_demo_flat(tmp_path: Path) -> None:
    check(run_phases(tmp_path, cycles=15, per_phase=6000), max_rss_growth_mb=15)
