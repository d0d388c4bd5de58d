"""`narrows capacity` against a real demo process whose saturation point is known.

The demo runs with one shard, a pool of 2 connections and ``slow_shard`` holding each
connection 40 ms longer (the query waits while it holds it), cache off, so `GET /items/{id}`
saturates at about 2 / (40 ms + the query) ≈ 47–50 req/s from N = 2 clients on: the issue's
acceptance test is that the USL fit's predicted maximum is within 20 % of the throughput
measured there.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from narrows.cli import main
from narrows.endpoints import Endpoints
from narrows.ports import free_port
from tests.support.procs import OwnedProcess, narrows_cmd, wait_http

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POOL = 2
DELAY_MS = 40.0
ITEMS = 1000
#: The pool's limit: each request holds one of POOL connections for at least DELAY_MS.
POOL_LIMIT_RPS = POOL * 1000.0 / DELAY_MS
STEPS = (1, 2, 3, 4, 6, 8, 12)
#: Well past the pool: every step here is saturated.
SATURATED_FROM = 2 * POOL
#: Nothing exported (no collector in this test; a default OTLP endpoint may be another's).
QUIET = {"OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}


@dataclass
class Demo:
    url: str
    data_dir: Path  # holds the endpoints.json `narrows capacity` finds it by
    proc: OwnedProcess


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    port = free_port()
    proc = OwnedProcess.start(
        "demo",
        narrows_cmd(
            "demo",
            "--data-dir",
            str(tmp_path / "demo-data"),
            "--demo-port",
            str(port),
            "--shards",
            "1",
            "--pool-size",
            str(POOL),
            "--cache",
            "none",
            "--seed-items",
            str(ITEMS),
            "--fault",
            f"slow_shard:shard=0,delay_ms={DELAY_MS:g}",
        ),
        tmp_path / "logs",
        env=QUIET,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", 60, proc)
        data_dir = tmp_path / "data"
        # What `narrows up` writes; only the demo URL is read.
        Endpoints(url, "http://-", "http://-", "http://-", "http://-", proc.proc.pid).write(
            data_dir
        )
        yield Demo(url, data_dir, proc)
    finally:
        proc.stop()


def _capacity(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        narrows_cmd("capacity", *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **QUIET},
    )


def test_the_usl_predicts_the_measured_saturation_throughput_within_20_percent(
    demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sweep time: about 4 s to start, 1 s warm-up, 7 steps × 2.5 s, 3 s to fit."""
    saved = tmp_path / "sweep.csv"
    started = time.monotonic()
    done = _capacity(
        "--data-dir",
        str(demo.data_dir),
        "--route",
        "get",
        "--max-id",
        str(ITEMS),
        "--concurrency",
        ",".join(map(str, STEPS)),
        "--step-seconds",
        "2.5",
        "--warmup-seconds",
        "1",
        "--target-rps",
        "500",
        "--slo-p99",
        "250ms",
        "--save",
        str(saved),
        "--json",
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)  # nothing but the JSON on stdout

    progress = [line for line in done.stderr.splitlines() if " step " in line]
    assert [line.split()[3] for line in progress] == [
        f"{i}/{len(STEPS)}" for i in range(1, len(STEPS) + 1)
    ]
    steps = {s["concurrency"]: s for s in doc["steps"]}
    assert sorted(steps) == list(STEPS)
    assert all(s["error_rate"] == 0 for s in steps.values()), doc["steps"]

    saturated = [steps[n]["throughput_rps"] for n in STEPS if n >= SATURATED_FROM]
    measured = sum(saturated) / len(saturated)
    predicted = doc["max_throughput_rps"]
    error = predicted / measured - 1
    figures = (
        f"capacity: predicted {predicted:.1f} req/s, measured at saturation {measured:.1f} "
        f"req/s ({error:+.1%}); pool limit {POOL_LIMIT_RPS:.0f} req/s; "
        f"USL σ {doc['usl']['sigma']:.3f} κ {doc['usl']['kappa']:.5f} "
        f"R² {doc['usl']['r2']:.3f} MAPE {doc['usl']['mape']:.1%}; "
        f"knee N≈{doc['knee_concurrency']:.1f}; sweep took {took:.1f} s"
    )
    with capsys.disabled():  # the figures, for `pytest -s` runs that record them
        print(f"\n{figures}")
    # The demo saturates where its pool says, not on something else (CPU, the client):
    # never above the pool's limit, and not far below it even on a busy machine.
    assert 0.5 * POOL_LIMIT_RPS <= measured <= 1.05 * POOL_LIMIT_RPS, doc["steps"]
    # The acceptance bound.
    assert abs(error) <= 0.20, figures
    assert doc["saturated"] is True
    assert 1 <= doc["knee_concurrency"] <= max(STEPS)
    # Little's law holds in a closed loop: X × mean latency ≈ N.
    assert all(0.8 <= s["littles_ratio"] <= 1.2 for s in doc["steps"]), doc["steps"]
    assert doc["replicas"] == math.ceil(500 / (doc["per_replica_rps"] * doc["headroom"]))

    # The sweep is saved for `--from` (read back in tests/unit/narrows/test_capacity.py).
    rows = saved.read_text().splitlines()
    assert rows[0].startswith("concurrency,throughput_rps,p50_ms,p95_ms,p99_ms,mean_ms")
    assert len(rows) == 1 + len(STEPS)


def test_a_demo_that_is_not_there_is_one_line_naming_its_url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code = main(["capacity", "--demo-url", url, "--concurrency", "1,2,4", "--step-seconds", "1"])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"narrows capacity: demo unreachable at {url}: ")


def test_a_demo_that_stops_during_the_sweep_is_reported_not_fitted(demo: Demo) -> None:
    proc = subprocess.Popen(
        narrows_cmd(
            "capacity",
            "--demo-url",
            demo.url,
            "--concurrency",
            "1,2,4",
            "--step-seconds",
            "1.5",
            "--warmup-seconds",
            "0",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **QUIET},
    )
    try:
        assert proc.stderr is not None
        seen: list[str] = []
        while not any(" step 1/3 " in line for line in seen):
            line = proc.stderr.readline()
            assert line, f"narrows capacity ended before its first step: {seen}"
            seen.append(line)
        demo.proc.stop()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    assert out == ""
    assert f"narrows capacity: the demo at {demo.url} stopped answering during step c=" in err
    assert "Traceback" not in err
