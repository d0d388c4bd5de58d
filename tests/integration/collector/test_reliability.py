"""Nothing acknowledged is lost: overload answers 503 + Retry-After within the memory bound
and recovers; a kill -9 under load (scenario 3) loses no span that got a 2xx, leaves no
request half-stored and the store opens cleanly (``make soak``: ten kills in a row)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import duckdb
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from benchmarks._payloads import trace_request
from tests.integration.collector.conftest import PROTOBUF
from tests.support.collector import live_collector
from tests.support.stack import collector_proc

pytestmark = pytest.mark.integration


def test_stalled_writer_means_503_with_retry_after_then_service_resumes(tmp_path: Path) -> None:
    capacity = 4 << 20
    with live_collector(tmp_path, queue_bytes=capacity) as c:
        gate = c.collector.pipeline.gate
        c.collector.writer.pause()
        acked = 0
        refused = None
        peak = 0
        with httpx.Client(timeout=10) as client:
            for i in range(200):
                r = client.post(
                    c.otlp_url + "/v1/traces", content=trace_request(256, seed=i), headers=PROTOBUF
                )
                peak = max(peak, gate.used)
                if r.status_code == 503:
                    refused = r
                    break
                assert r.status_code == 200
                acked += 256
        assert refused is not None, "the collector never pushed back"
        assert refused.headers["retry-after"] == "1"
        assert peak <= capacity
        c.collector.writer.resume()
        c.wait_stored()
        assert gate.used == 0
        again = httpx.post(
            c.otlp_url + "/v1/traces", content=trace_request(256, seed=999), headers=PROTOBUF
        )
        assert again.status_code == 200
        c.wait_stored()
        assert c.query("/api/narrows/stats").json()["spans"]["count"] == acked + 256


def _span_ids(body: bytes) -> list[int]:
    req = ExportTraceServiceRequest.FromString(body)
    return [
        int.from_bytes(sp.span_id, "big")
        for rs in req.resource_spans
        for ss in rs.scope_spans
        for sp in ss.spans
    ]


def kill_9_under_load(data_dir: Path, cycles: int, acks_per_cycle: int) -> dict[str, int]:
    """``cycles`` times: a collector under load from 3 senders is killed with SIGKILL after
    ``acks_per_cycle`` acknowledged requests. Then the store must hold every acknowledged
    span, each request's spans all or none (no half-written request), nothing twice."""
    attempted: dict[int, list[int]] = {}
    acked: set[int] = set()
    seed = 0
    lock = threading.Lock()
    for cycle in range(cycles):
        stop = threading.Event()
        with collector_proc(data_dir, name=f"collector-{cycle}") as col:

            def send(url: str, stop: threading.Event) -> None:
                nonlocal seed
                with httpx.Client(timeout=5) as client:
                    while not stop.is_set():
                        with lock:
                            seed += 1
                            mine = seed
                        body = trace_request(64, seed=mine)
                        attempted[mine] = _span_ids(body)
                        try:
                            r = client.post(url + "/v1/traces", content=body, headers=PROTOBUF)
                        except httpx.HTTPError:
                            continue
                        if r.status_code == 200:
                            acked.add(mine)

            senders = [threading.Thread(target=send, args=(col.otlp_url, stop)) for _ in range(3)]
            for t in senders:
                t.start()
            goal = len(acked) + acks_per_cycle
            deadline = time.monotonic() + 30
            while len(acked) < goal and time.monotonic() < deadline:
                time.sleep(0.02)
            col.proc.stop(signal.SIGKILL)
            stop.set()
            for t in senders:
                t.join(10)
    assert len(acked) >= cycles * 20, "too little load reached the collector"
    with collector_proc(data_dir, name="collector-final") as col:
        stats = httpx.get(col.query_url + "/api/narrows/stats", timeout=10).json()
    conn = duckdb.connect(str(data_dir / "narrows.duckdb"), read_only=True)
    try:
        stored = [int(x) for (x,) in conn.execute("SELECT span_id FROM spans").fetchall()]
    finally:
        conn.close()
    present = set(stored)
    assert len(stored) == len(present), f"{len(stored) - len(present)} spans stored twice"
    assert stats["spans"]["count"] == len(stored)
    partial = [s for s, ids in attempted.items() if 0 < sum(i in present for i in ids) < len(ids)]
    assert not partial, f"{len(partial)} requests half-stored"
    lost = [s for s in acked if not all(i in present for i in attempted[s])]
    assert not lost, f"{len(lost)} acknowledged requests lost"
    figures = {
        "cycles": cycles,
        "requests_acknowledged": len(acked),
        "spans_acknowledged": sum(len(attempted[s]) for s in acked),
        "spans_stored": len(stored),
        "lost": len(lost),
        "half_written": len(partial),
    }
    print("kill -9:", figures)
    return figures


@pytest.mark.slow
def test_kill_9_under_load_loses_no_acknowledged_span(data_dir: Path) -> None:
    kill_9_under_load(data_dir, cycles=1, acks_per_cycle=150)


@pytest.mark.soak
def test_kill_9_ten_times_under_load_loses_no_acknowledged_span(data_dir: Path) -> None:
    kill_9_under_load(data_dir, cycles=10, acks_per_cycle=300)
