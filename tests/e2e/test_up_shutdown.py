"""Scenario 6 on `narrows up`: SIGTERM with the demo's spans still queued stops the demo
before the collector, so what it flushes is stored; and a SIGKILLed supervisor leaves no
process behind (the kernel's parent-death signal stops each child)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.support.procs import alive, descendants, wait_for
from tests.support.stack import collector_proc, narrows_up

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REQUESTS = 30


def _kill_all(pids: set[int]) -> None:
    """Clean-up after a failure: no orphan outlives the test, whatever it asserted."""
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def stop_with_spans_queued(data: Path, *extra: str) -> dict[str, object]:
    """One `narrows up`: requests with known trace ids whose spans wait in the demo's queue,
    SIGTERM, then every child gone and every trace in the store it left behind."""
    buffered = {"OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_BLRP_SCHEDULE_DELAY": "600000"}
    with narrows_up(data, *extra, env=buffered) as up:
        children = descendants(up.proc.proc.pid)
        try:
            assert len(children) >= 3  # collector, demo, dashboard
            ids = []
            with httpx.Client(base_url=up.endpoints["demo"], timeout=10) as client:
                for i in range(REQUESTS):
                    trace_id = f"5d{data.parent.name[-6:].encode().hex()[:6]}{i:024x}"
                    header = {"traceparent": f"00-{trace_id}-{'4' * 16}-01"}
                    assert client.get(f"/items/{i + 1}", headers=header).status_code == 200
                    ids.append(trace_id)
            query = up.endpoints["query"]
            time.sleep(1)
            assert httpx.get(f"{query}/api/v3/traces/{ids[0]}", timeout=5).status_code == 404
            started = time.monotonic()
            up.proc.proc.send_signal(signal.SIGTERM)
            up.proc.proc.wait(30)
            took = time.monotonic() - started
            wait_for(lambda: not any(alive(p) for p in children), 5, "every child to exit")
        finally:
            _kill_all(children)
    log = up.proc.log()
    assert up.proc.proc.returncode == 0, log[-2000:]
    assert took < 20, f"narrows up took {took:.1f}s to stop"
    with collector_proc(data, name="reopened") as col:  # the store the stack left behind
        missing = [
            t
            for t in ids
            if httpx.get(f"{col.query_url}/api/v3/traces/{t}", timeout=5).status_code != 200
        ]
        logs = httpx.get(
            f"{col.query_url}/api/narrows/logs", params={"traceId": ids[-1]}, timeout=5
        ).json()["logs"]
    assert missing == []
    assert logs, "the demo's access log line for the last request was not stored"
    return {"stop_s": round(took, 2), "children": len(children), "lost": len(missing)}


def test_sigterm_stores_the_demos_queued_spans_and_leaves_no_process(tmp_path: Path) -> None:
    figures = stop_with_spans_queued(tmp_path / "data")
    print("FIGURES " + json.dumps({"scenario": 6, **figures}))


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_repeated_stops_under_load_lose_nothing_and_leave_nothing(tmp_path: Path) -> None:
    runs = [stop_with_spans_queued(tmp_path / f"run{i}" / "data", "--load") for i in range(10)]
    print("FIGURES " + json.dumps({"scenario": 6, "runs": runs}))
    assert all(r["lost"] == 0 for r in runs)


def test_a_sigkilled_supervisor_leaves_no_orphans(tmp_path: Path) -> None:
    with narrows_up(tmp_path / "data", "--load") as up:
        children = descendants(up.proc.proc.pid)
        try:
            assert len(children) >= 4  # collector, demo, dashboard, load
            up.proc.proc.send_signal(signal.SIGKILL)
            up.proc.proc.wait(10)
            started = time.monotonic()
            wait_for(lambda: not any(alive(p) for p in children), 20, "orphans to exit")
            gone = time.monotonic() - started
        finally:
            _kill_all(children)
    print("FIGURES " + json.dumps({"scenario": 6, "children": len(children), "gone_s": gone}))
