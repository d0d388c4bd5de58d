"""Nothing acknowledged is lost: overload answers 503 + Retry-After within the memory bound
and recovers; a kill -9 under load loses no span that got a 2xx."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

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


def _first_trace_id(body: bytes) -> str:
    req = ExportTraceServiceRequest.FromString(body)
    return str(req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex())


@pytest.mark.slow
def test_kill_9_under_load_loses_no_acknowledged_span(data_dir: Path) -> None:
    acked: list[tuple[str, int]] = []
    stop = threading.Event()
    with collector_proc(data_dir, name="collector-1") as col:

        def send(worker: int) -> None:
            with httpx.Client(timeout=5) as client:
                i = 0
                while not stop.is_set():
                    body = trace_request(64, seed=worker * 100_000 + i)
                    i += 1
                    try:
                        r = client.post(col.otlp_url + "/v1/traces", content=body, headers=PROTOBUF)
                    except httpx.HTTPError:
                        continue
                    if r.status_code == 200:
                        acked.append((_first_trace_id(body), 64))

        senders = [threading.Thread(target=send, args=(w,)) for w in range(3)]
        for t in senders:
            t.start()
        deadline = time.monotonic() + 20
        while len(acked) < 150 and time.monotonic() < deadline:
            time.sleep(0.05)
        col.proc.stop(signal.SIGKILL)
        stop.set()
        for t in senders:
            t.join(10)
    assert len(acked) >= 20, "too little load reached the collector"
    with collector_proc(data_dir, name="collector-2") as col2:
        stats = httpx.get(col2.query_url + "/api/narrows/stats", timeout=10).json()
        assert stats["spans"]["count"] >= sum(n for _, n in acked)
        with httpx.Client(timeout=10) as client:
            for trace_id, _ in acked:
                r = client.get(f"{col2.query_url}/api/v3/traces/{trace_id}")
                assert r.status_code == 200, f"acknowledged trace {trace_id} lost"
