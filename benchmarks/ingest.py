"""Ingest throughput: OTLP protobuf requests of 512 spans through HTTP into a durable
collector, against the in-process ceiling on the same payloads (decode → flatten → one
Arrow insert into DuckDB, no HTTP, no durability). Prints spans/s and the ratio.

``python -m benchmarks ingest`` (or ``make bench BENCH=ingest``); ``--seconds N``,
``--senders N`` change the run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

import duckdb
import httpx

from benchmarks._payloads import trace_request
from collector.ingest import Kind, decode
from collector.store.schema import create_schema
from collector.store.writer import Batch, insert_batches

N_BODIES = 40
SPANS = 512


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process(bodies: list[bytes], rounds: int) -> float:
    """Spans/s of decode + flatten + DuckDB Arrow insert (groups of 10 requests), one
    thread, in CPU time (the machine is shared, so wall time would measure the others)."""
    conn = duckdb.connect(config={"threads": 1})
    create_schema(conn)
    done = 0
    t0 = time.process_time()
    for r in range(rounds):
        group = []
        for i, body in enumerate(bodies):
            group.append(Batch(decode(Kind.OTLP_TRACES_PROTO, body, time.time_ns(), {}), None, 0))
            if len(group) == 10 or i == len(bodies) - 1:
                insert_batches(conn, group)
                done += sum(b.decoded.accepted for b in group)
                group = []
        del r
    return done / (time.process_time() - t0)


def _sender(url: str, seed: int, seconds: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    bodies = [trace_request(SPANS, seed=seed * 100_000 + i) for i in range(int(seconds * 120))]
    sent = 0
    refused = 0
    started = time.monotonic()
    deadline = started + seconds
    i = 0
    with httpx.Client(timeout=30) as client:
        while time.monotonic() < deadline and i < len(bodies):
            # Requests repeat bodies: the collector's retry dedupe answers those without
            # storing them again, which would flatter the rate — so each body is sent once
            # per run and the pool is big enough for the run (see bodies below).
            body = bodies[i]
            i += 1
            r = client.post(url, content=body, headers={"content-type": "application/x-protobuf"})
            if r.status_code == 200:
                sent += SPANS
            else:
                refused += 1
                time.sleep(0.05)
    out.put((sent, refused, started, time.monotonic()))


def through_http(seconds: float, senders: int) -> tuple[float, float, int, float]:
    """(acknowledged spans/s, stored spans/s including the drain, 503s, stored spans per
    CPU-second of the collector process) for one collector."""
    from narrows.ports import free_port
    from tests.support.procs import OwnedProcess, narrows_cmd, wait_http

    data = Path(tempfile.mkdtemp(prefix="narrows-bench-"))
    otlp, zipkin, query = free_port(), free_port(), free_port()
    proc = OwnedProcess.start(
        "collector",
        narrows_cmd(
            "collector",
            "--data-dir",
            str(data),
            "--otlp-port",
            str(otlp),
            "--zipkin-port",
            str(zipkin),
            "--query-port",
            str(query),
            "--retention",
            "0",
            "--max-size",
            "0",
        ),
        data / "logs",
        env={"NARROWS_DUCKDB_THREADS": "1"},
    )
    try:
        wait_http(f"http://127.0.0.1:{query}/healthz", 30, proc)
        q: mp.Queue = mp.Queue()  # type: ignore[type-arg]
        procs = [
            mp.Process(target=_sender, args=(f"http://127.0.0.1:{otlp}/v1/traces", s, seconds, q))
            for s in range(senders)
        ]
        for p in procs:
            p.start()
        # Senders build their bodies first (seconds of CPU): count the collector's CPU from
        # the first request on.
        while True:
            stats = httpx.get(f"http://127.0.0.1:{query}/api/narrows/stats", timeout=30).json()
            if stats["spans"]["count"] or stats["ingest"]["pending_batches"]:
                break
            time.sleep(0.01)
        cpu0 = _cpu_seconds(proc.proc.pid)
        stored0 = stats["spans"]["count"]
        results = [q.get() for _ in procs]
        for p in procs:
            p.join()
        # Senders build their bodies first; time only the window in which they all sent.
        t0 = min(r[2] for r in results)
        acked_s = max(r[3] for r in results) - t0
        acked = sum(r[0] for r in results)
        while True:
            stats = httpx.get(f"http://127.0.0.1:{query}/api/narrows/stats", timeout=30).json()
            if stats["ingest"]["pending_batches"] == 0:
                break
            time.sleep(0.1)
        stored_s = time.monotonic() - t0
        cpu = _cpu_seconds(proc.proc.pid) - cpu0
        assert stats["spans"]["count"] >= acked
        return (
            acked / acked_s,
            stats["spans"]["count"] / stored_s,
            sum(r[1] for r in results),
            (stats["spans"]["count"] - stored0) / cpu,
        )
    finally:
        proc.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.ingest")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--senders", type=int, default=3)
    args = parser.parse_args(argv)
    bodies = [trace_request(SPANS, seed=i) for i in range(N_BODIES)]
    in_process(bodies, 1)  # warm the attribute cache, as a running collector's would be
    ceiling = in_process(bodies, 5)
    acked, stored, refused, per_cpu = through_http(args.seconds, args.senders)
    ceiling_after = in_process(bodies, 5)
    ceiling = (ceiling + ceiling_after) / 2
    print(
        f"in-process decode+flatten+insert : {ceiling:10,.0f} spans/CPU-s, one thread (mean of before/after)"
    )
    print(
        f"HTTP, durable (WAL fsync), acked : {acked:10,.0f} spans/s wall ({acked / ceiling:.2f}x)"
    )
    print(
        f"HTTP, stored incl. drain         : {stored:10,.0f} spans/s wall ({stored / ceiling:.2f}x)"
    )
    print(
        f"HTTP, per collector CPU-second   : {per_cpu:10,.0f} spans/CPU-s ({per_cpu / ceiling:.2f}x)"
    )
    print(f"503 answers during the run       : {refused}")
    print("target: >= 100k spans/s on one core and >= 0.7x the in-process pipeline")
    return 0
