"""Scenario 1, sustained load: 10k spans/s from several sender processes, over OTLP
protobuf, gzip-compressed OTLP and Zipkin JSON. Every span sent is stored (sent ==
stored), the collector's peak RSS stays under a budget, and the p99 ingest latency (2xx
round trip seen by the sender) is recorded and bounded.

Senders send one request at a time, as exporters do, so a slow collector slows them.
CI runs 5 s per format from 3 senders: sent == stored exactly, no failed request, RSS under
budget; the rate (≥ 1,000 spans/s) and p99 (< 10 s) only as floors, since other jobs may
own most of the 2 shared cores for those 5 s (measured at load 16: 1.3k spans/s for
Zipkin, p99 4.8 s). ``make soak`` runs 60 s per format and holds ≥ 8,000 spans/s and
p99 < 2 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.stack import collector_proc

pytestmark = pytest.mark.integration

RATE = 10_000
#: Peak RSS of the collector process. Its memory bound on queued data is NARROWS_QUEUE_SIZE
#: (64 MiB here); DuckDB, Python and the decoded batches come on top.
RSS_BUDGET_MB = 600
#: Generous: the machine is shared; measured p99 is in docs/reliability.md. The short CI
#: form holds looser bounds (another job may own most of the 2 cores for its 5 s); the
#: 60 s soak holds the tight ones.
P99_BUDGET_S = 2.0
CI_P99_BUDGET_S = 10.0
CI_RATE_SHARE = 0.1
SOAK_RATE_SHARE = 0.8


def _rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_senders(base_url: str, fmt: str, rate: float, seconds: float, n: int) -> list[Any]:
    """``n`` sender processes, started together, ``rate`` spans/s in all; their results."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.load_sender",
                base_url,
                fmt,
                str(rate / n),
                str(seconds),
                str(i + 1),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            out, _ = p.communicate(timeout=seconds + 120)
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def sustained_load(data_dir: Path, fmt: str, seconds: float, senders: int) -> dict[str, Any]:
    """Run the load against a fresh collector process; the figures measured."""
    env = {"NARROWS_QUEUE_SIZE": "64MiB"}
    with collector_proc(data_dir, "--retention", "0", "--max-size", "0", env=env) as col:
        pid = col.proc.proc.pid
        peak_sampled = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak_sampled
            while not stop.wait(0.2):
                peak_sampled = max(peak_sampled, _rss_kb(pid, "VmRSS"))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        base = col.zipkin_url if fmt == "zipkin" else col.otlp_url
        t0 = time.monotonic()
        results = run_senders(base, fmt, RATE, seconds, senders)
        deadline = time.monotonic() + 60
        while True:
            stats = httpx.get(col.query_url + "/api/narrows/stats", timeout=30).json()
            if stats["ingest"]["pending_batches"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        stored_after_s = time.monotonic() - t0
        stop.set()
        sampler.join()
        hwm_mb = _rss_kb(pid, "VmHWM") / 1024
    latencies = [x for r in results for x in r["latencies_s"]]
    sent = sum(r["spans_sent"] for r in results)
    figures = {
        "format": fmt,
        "senders": senders,
        "seconds": seconds,
        "spans_sent": sent,
        "spans_acked": sum(r["spans_acked"] for r in results),
        "spans_stored": stats["spans"]["count"],
        "failed_requests": sum(r["failed_requests"] for r in results),
        "retries": sum(r["retries"] for r in results),
        "send_rate": sent / max(r["seconds"] for r in results),
        "stored_within_s": stored_after_s,
        "p50_ms": 1000 * _p(latencies, 0.50),
        "p99_ms": 1000 * _p(latencies, 0.99),
        "peak_rss_mb": max(hwm_mb, peak_sampled / 1024),
    }
    print("sustained load:", json.dumps(figures))
    return figures


def check(
    figures: dict[str, Any],
    rate: float,
    share: float = SOAK_RATE_SHARE,
    p99_s: float = P99_BUDGET_S,
) -> None:
    assert figures["failed_requests"] == 0, figures
    assert figures["spans_acked"] == figures["spans_sent"], figures
    assert figures["spans_stored"] == figures["spans_sent"], "sent != stored"
    # Senders send one request at a time, as exporters do: a collector that answers slowly
    # slows them down.
    assert figures["send_rate"] >= share * rate, f"the senders fell behind: {figures}"
    assert figures["peak_rss_mb"] < RSS_BUDGET_MB, figures
    assert figures["p99_ms"] < 1000 * p99_s, figures


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["otlp", "gzip", "zipkin"])
def test_10k_spans_per_second_for_5s_are_all_stored_within_budget(data_dir: Path, fmt: str) -> None:
    figures = sustained_load(data_dir, fmt, seconds=5, senders=3)
    check(figures, RATE, CI_RATE_SHARE, CI_P99_BUDGET_S)


@pytest.mark.soak
@pytest.mark.parametrize("fmt", ["otlp", "gzip", "zipkin"])
def test_10k_spans_per_second_for_60s_are_all_stored_within_budget(
    data_dir: Path, fmt: str
) -> None:
    seconds = float(os.environ.get("NARROWS_SOAK_SECONDS", "60"))
    check(sustained_load(data_dir, fmt, seconds=seconds, senders=3), RATE)
