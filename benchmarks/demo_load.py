"""The demo under `narrows load`: what the cache and parallel fan-out are worth, side by side.

Starts `narrows demo` (SQLite shards, telemetry export off) on a free port and drives it
with `narrows load --json`, so the figures are the ones a user sees:

1. GET /items/{id} at concurrency 8 with the in-process cache vs. without it (throughput);
2. multi-get of 5 ids over 4 shards, in parallel vs. with ``sequential_fanout`` (p50).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from narrows.ports import free_port

STEP_SECONDS = float(os.environ.get("NARROWS_BENCH_STEP_SECONDS", "6"))
ENV = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "PYTHONUNBUFFERED": "1"}


@contextlib.contextmanager
def _demo(data_dir: Path, *args: str) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "narrows", "demo", "--data-dir", str(data_dir)]
    proc = subprocess.Popen(
        [*cmd, "--demo-port", str(port), *args],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("narrows demo did not start")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _load(url: str, *args: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "narrows", "load", "--target", url, "--json", "--progress", "0"]
    out = subprocess.run(
        [*cmd, *args],
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
        timeout=STEP_SECONDS * 4 + 60,
    ).stdout
    step: dict[str, Any] = json.loads(out)["steps"][0]
    return step


def main(argv: list[str]) -> int:
    closed = ["--concurrency", "8", "--step-seconds", str(STEP_SECONDS)]
    with tempfile.TemporaryDirectory(prefix="narrows-bench-") as tmp:
        with _demo(Path(tmp), "--cache", "memory") as url:
            _load(url, *closed, "--mix", "get=1")  # warm-up: fills the cache
            cached = _load(url, *closed, "--mix", "get=1")
            parallel = _load(url, *closed, "--mix", "multiget=1")
            httpx.put(f"{url}/admin/faults/sequential_fanout", json={}, timeout=5)
            sequential = _load(url, *closed, "--mix", "multiget=1")
        with _demo(Path(tmp), "--cache", "none") as url:
            uncached = _load(url, *closed, "--mix", "get=1")

    def row(name: str, step: dict[str, Any]) -> str:
        lat = step["latency_ms"]
        return (
            f"  {name:<28} {step['throughput_rps']:8.1f} req/s   p50 {lat['p50']:6.1f} ms"
            f"   p95 {lat['p95']:6.1f} ms   errors {step['errors']}"
        )

    print(f"closed loop, concurrency 8, {STEP_SECONDS:g} s per variant, SQLite, 4 shards")
    print(row("get, memory cache", cached))
    print(row("get, no cache", uncached))
    print(row("multi-get, parallel", parallel))
    print(row("multi-get, sequential_fanout", sequential))
    ratio = cached["throughput_rps"] / max(uncached["throughput_rps"], 1e-9)
    print(f"cache: {ratio:.2f}x the throughput of shard reads")
    slower = sequential["latency_ms"]["p50"] / max(parallel["latency_ms"]["p50"], 1e-9)
    print(f"sequential fan-out: p50 {slower:.2f}x the parallel multi-get's")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
