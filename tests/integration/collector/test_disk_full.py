"""Scenario 3, disk full: the collector's data directory on a small tmpfs, filled by a
ballast file. Ingest answers 503 + ``Retry-After`` (never 500), the self-metrics say why,
the process and the query API stay up, and when the ballast goes ingest resumes by itself
within seconds; every span acknowledged before, during and after is stored exactly once,
also after a restart (the write-ahead log was cut back cleanly, not left torn). Over many
cycles (``make soak``) a DuckDB checkpoint eventually fails on the full disk and DuckDB
invalidates the database: the collector reopens it by itself (``narrows_store_reopened``).

Needs root to mount the tmpfs (CI runs as root).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks._payloads import trace_request
from tests.integration.collector.conftest import PROTOBUF
from tests.support.collector import live_collector
from tests.support.prom import metric_sum
from tests.support.stack import collector_proc

pytestmark = pytest.mark.integration

SPANS = 500
#: Ingest must accept again this soon after space returns (the write-ahead log is probed
#: every second, a failing DuckDB commit retried at most 2 s apart).
RECOVERY_BUDGET_S = 10.0


@contextlib.contextmanager
def small_disk(where: Path, size: str = "48m") -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """A ballast file taking every free byte of ``disk``."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1):  # down to the last bytes
            chunk = b"\0" * size
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, chunk)
    finally:
        os.close(fd)
    return ballast


class Sender:
    def __init__(self, otlp_url: str) -> None:
        self.client = httpx.Client(base_url=otlp_url, headers=PROTOBUF, timeout=30)
        self.acked = 0
        self.seed = 0
        self.statuses: dict[int, int] = {}

    def send(self) -> httpx.Response:
        self.seed += 1
        r = self.client.post("/v1/traces", content=trace_request(SPANS, seed=self.seed))
        self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
        if r.status_code == 200:
            self.acked += SPANS
        else:
            assert r.status_code == 503, (r.status_code, r.text)
            assert r.headers["retry-after"], "a 503 without Retry-After"
        return r


def disk_full_cycles(tmp_path: Path, cycles: int) -> dict[str, float]:
    """``cycles`` times: fill the disk, expect 503s and the metrics, free it, expect
    ingest back within the budget. Then every acknowledged span is stored, once, also
    after a restart."""
    recoveries: list[float] = []
    with small_disk(tmp_path / "disk") as disk:
        data = disk / "data"
        data.mkdir()
        with collector_proc(data, "--retention", "0", "--max-size", "0") as col:
            s = Sender(col.otlp_url)
            for _ in range(10):
                assert s.send().status_code == 200
            for _ in range(cycles):
                ballast = fill(disk)
                refused = 0
                for _ in range(30):
                    refused += s.send().status_code == 503
                assert refused >= 25, s.statuses
                assert col.proc.alive(), "the collector died on a full disk"
                metrics = httpx.get(col.query_url + "/metrics", timeout=10).text
                # The write-ahead log fails first, or DuckDB does (then requests are
                # refused before they reach the log).
                assert metric_sum(metrics, "narrows_storage_failing") >= 1
                assert (
                    metric_sum(
                        metrics,
                        "otelcol_receiver_refused_spans_total",
                        reason="storage_unavailable",
                    )
                    >= refused
                )
                assert metric_sum(metrics, "narrows_storage_free_bytes") < 1 << 20
                stats = httpx.get(col.query_url + "/api/narrows/stats", timeout=10)
                assert stats.status_code == 200, "queries must keep working on a full disk"
                assert stats.json()["storage"]["failing"], "the store does not say it fails"

                ballast.unlink()
                t0 = time.monotonic()
                while s.send().status_code != 200:
                    assert time.monotonic() - t0 < RECOVERY_BUDGET_S, "no recovery"
                    time.sleep(0.2)
                recoveries.append(time.monotonic() - t0)
                for _ in range(10):
                    assert s.send().status_code == 200
                metrics = httpx.get(col.query_url + "/metrics", timeout=10).text
                assert metric_sum(metrics, "narrows_storage_failing") == 0
            count = httpx.get(col.query_url + "/api/narrows/stats", timeout=10).json()
            assert count["spans"]["count"] == s.acked
            metrics = httpx.get(col.query_url + "/metrics", timeout=10).text
            reopened = metric_sum(metrics, "narrows_store_reopened_total")
        with collector_proc(data, "--retention", "0", "--max-size", "0", name="again") as col2:
            again = httpx.get(col2.query_url + "/api/narrows/stats", timeout=10).json()
            assert again["spans"]["count"] == s.acked, "the store reopened with other data"
    figures = {
        "cycles": cycles,
        "acknowledged_spans": s.acked,
        "refused_requests": s.statuses.get(503, 0),
        "max_recovery_s": max(recoveries),
        "store_reopened": reopened,
    }
    print("disk full:", figures)
    return figures


@pytest.mark.slow
def test_full_disk_means_503_and_a_metric_then_recovery_without_loss(tmp_path: Path) -> None:
    disk_full_cycles(tmp_path, cycles=1)


@pytest.mark.soak
def test_twenty_full_disks_in_a_row_lose_nothing(tmp_path: Path) -> None:
    disk_full_cycles(tmp_path, cycles=20)


def test_acknowledged_batches_whose_duckdb_commit_fails_are_kept_until_space_returns(
    tmp_path: Path,
) -> None:
    """The writer retries a failed commit instead of moving on: committing later groups
    first would record a log position past the failed one, and replay would skip it."""
    with (
        small_disk(tmp_path / "disk") as disk,
        live_collector(disk / "data", retention_ns=0, max_size=0) as c,
    ):
        s = Sender(c.otlp_url)
        c.collector.writer.pause()
        for _ in range(6):
            assert s.send().status_code == 200  # in the write-ahead log only
        ballast = fill(disk)
        c.collector.writer.resume()
        health = c.collector.pipeline.health
        deadline = time.monotonic() + 10
        while "duckdb" not in health.failing():
            assert time.monotonic() < deadline, "the DuckDB commit did not fail"
            time.sleep(0.05)
        assert s.send().status_code == 503, "ingest must stop while DuckDB cannot commit"
        ballast.unlink()
        c.wait_stored(timeout=15)
        assert health.failing() == []
        for _ in range(3):
            assert s.send().status_code == 200
        c.wait_stored()
        stats = c.query("/api/narrows/stats").json()
        assert stats["spans"]["count"] == s.acked
