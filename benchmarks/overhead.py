"""Instrumentation overhead: bare vs stock contrib vs Narrows vs Narrows with the exporter down.

``make bench BENCH=overhead`` (or ``python -m benchmarks.overhead [--runs N]
[--duration S] [--concurrency C]``). One uvicorn process per variant (see
``_overhead_app.py``), all started up front; the load comes from this process over
loopback with keep-alive connections in a closed loop. Rounds interleave the variants
(order rotated each round) and the table reports medians over the rounds: throughput,
its ratio to bare measured side by side, p50 and p99 latency, and the server's own CPU
time per request (all its threads, from /proc) with the ratio it implies — the figure
least disturbed by whatever else runs on a shared machine. A fifth variant turns on the
optional access log, to show what it costs.

On a machine with two or more CPUs the app servers are pinned to the last CPU and
the load generator and the null OTLP sink to the first, so the app's share of the
machine is the same for every variant.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import httpx

from narrows.ports import free_port

VARIANTS = ("bare", "stock", "narrows", "narrows_down", "narrows_access_log")
ENDPOINTS = {"trivial": "/trivial", "~1 ms": "/work/42"}
TARGETS = {"trivial": 0.5, "~1 ms": 0.85}


@dataclass
class Result:
    rps: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    errors: int = 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc; NaN elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _connection(port: int, request: bytes, stop_at: float, out: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = 0
    clock = time.perf_counter
    try:
        while clock() < stop_at:
            started = clock()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            out.append(clock() - started)
            if not head.startswith(b"HTTP/1.1 2"):
                errors += 1
    finally:
        writer.close()
    return errors


async def _load(port: int, path: str, seconds: float, concurrency: int) -> tuple[list[float], int]:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n\r\n".encode()
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    errors = await asyncio.gather(
        *(_connection(port, request, stop_at, latencies) for _ in range(concurrency))
    )
    return latencies, sum(errors)


def measure(
    port: int, pid: int, path: str, seconds: float, concurrency: int
) -> tuple[float, float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, server CPU µs per request, errors) for one run.

    The CPU figure counts every thread of the server (the exporter's too) and is far
    less sensitive than throughput to whatever else the shared machine is doing.
    """
    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    latencies, errors = asyncio.run(_load(port, path, seconds, concurrency))
    elapsed = time.perf_counter() - started
    cpu_used = cpu_seconds(pid) - cpu_before
    latencies.sort()
    n = len(latencies)
    p50 = latencies[n // 2] * 1000 if n else float("nan")
    p99 = latencies[min(n - 1, int(n * 0.99))] * 1000 if n else float("nan")
    return n / elapsed, p50, p99, cpu_used / max(n, 1) * 1e6, errors


def _pin(pid: int, cpus: set[int]) -> None:
    if hasattr(os, "sched_setaffinity"):
        with suppress(OSError):
            os.sched_setaffinity(pid, cpus)


@contextmanager
def _servers(pin: bool) -> Iterator[dict[str, tuple[int, int]]]:
    """Start the sink and one server per variant; yields {variant: (port, pid)}."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    app_cpus = {cpus[-1]} if pin and len(cpus) >= 2 else set()
    load_cpus = {cpus[0]} if app_cpus else set()
    procs: list[subprocess.Popen[bytes]] = []
    sink_port, dead_port = free_port(), free_port()
    py = sys.executable
    try:
        procs.append(subprocess.Popen([py, "-m", "benchmarks._overhead_sink", str(sink_port)]))
        ports: dict[str, tuple[int, int]] = {}
        for variant in VARIANTS:
            port = free_port(avoid={sink_port, dead_port, *(p for p, _ in ports.values())})
            endpoint = f"http://127.0.0.1:{dead_port if variant == 'narrows_down' else sink_port}"
            env = {
                **os.environ,
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_SERVICE_NAME": "bench",
                "PYTHONUNBUFFERED": "0",
                "NARROWS_ACCESS_LOG": "true" if variant == "narrows_access_log" else "false",
            }
            app_variant = "narrows" if variant.startswith("narrows") else variant
            proc = subprocess.Popen(
                [py, "-m", "benchmarks._overhead_app", app_variant, str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
            )
            procs.append(proc)
            ports[variant] = (port, proc.pid)
            if app_cpus:
                _pin(proc.pid, app_cpus)
        if load_cpus:
            _pin(procs[0].pid, load_cpus)
            _pin(os.getpid(), load_cpus)
        for variant, (port, _) in ports.items():
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/trivial", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the {variant} server did not start")
                time.sleep(0.2)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def run(runs: int, seconds: float, concurrency: int, pin: bool) -> dict[tuple[str, str], Result]:
    results = {(e, v): Result() for e in ENDPOINTS for v in VARIANTS}
    with _servers(pin) as ports:
        for path in ENDPOINTS.values():
            for variant in VARIANTS:  # warm-up: imports, caches, first exports
                measure(*ports[variant], path, 1.0, concurrency)
        for r in range(runs):
            for endpoint, path in ENDPOINTS.items():
                order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
                for variant in order:
                    rps, p50, p99, cpu, errors = measure(
                        *ports[variant], path, seconds, concurrency
                    )
                    res = results[(endpoint, variant)]
                    res.cpu_us.append(cpu)
                    res.rps.append(rps)
                    res.p50.append(p50)
                    res.p99.append(p99)
                    res.errors += errors
                    print(
                        f"  round {r + 1} {endpoint:>7} {variant:<13} {rps:8.0f} req/s "
                        f"p50 {p50:6.2f} ms p99 {p99:6.2f} ms cpu {cpu:6.0f} µs/req",
                        flush=True,
                    )
    return results


def table(results: dict[tuple[str, str], Result]) -> str:
    lines = [
        "| endpoint | variant | req/s (median) | × bare (median of rounds) | p50 ms | p99 ms "
        "| server CPU µs/req | × bare by CPU | non-2xx |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for endpoint in ENDPOINTS:
        bare_cpu = statistics.median(results[(endpoint, "bare")].cpu_us)
        for variant in VARIANTS:
            res = results[(endpoint, variant)]
            rps, cpu = statistics.median(res.rps), statistics.median(res.cpu_us)
            lines.append(
                f"| {endpoint} | {variant} | {rps:.0f} | {ratio(results, endpoint, variant):.2f} | "
                f"{statistics.median(res.p50):.2f} | {statistics.median(res.p99):.2f} | "
                f"{cpu:.0f} | {bare_cpu / cpu:.2f} | {res.errors} |"
            )
    return "\n".join(lines)


def ratio(results: dict[tuple[str, str], Result], endpoint: str, variant: str) -> float:
    """Median over rounds of the round's throughput over bare's in the same round.

    Each round measures every variant back to back, so a slow stretch of the shared
    machine hits one round's pair alike; the median drops the rounds it distorted.
    """
    bare, res = results[(endpoint, "bare")].rps, results[(endpoint, variant)].rps
    return statistics.median(v / b for v, b in zip(res, bare, strict=True))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead")
    parser.add_argument("--runs", type=int, default=8, help="rounds (median over them; >= 3)")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.duration <= 0 or args.concurrency < 1:
        parser.error("--runs, --duration and --concurrency must be positive")
    print(
        f"overhead: {args.runs} rounds x {args.duration:g} s, {args.concurrency} connections, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = run(args.runs, args.duration, args.concurrency, not args.no_pin)
    print()
    print(table(results))
    missed = []
    for endpoint, target in TARGETS.items():
        got = ratio(results, endpoint, "narrows")
        if got < target:
            missed.append(f"{endpoint}: narrows {got:.2f}x bare < target {target}x")
    print("\n" + ("targets met" if not missed else "targets missed: " + "; ".join(missed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
