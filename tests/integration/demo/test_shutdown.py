"""Scenario 6, graceful shutdown of the demo: SIGTERM with spans and logs still queued sends
them to a live collector before the process exits; with the collector down (refusing, or
accepting and never answering) the exit still comes within NARROWS_SHUTDOWN_TIMEOUT.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from narrows.ports import free_port
from tests.support.procs import OwnedProcess
from tests.support.stack import CollectorProc, collector_proc, demo_proc, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REQUESTS = 40
#: uvicorn finishes its graceful shutdown, then re-raises SIGTERM: the exit says so.
EXITED = (0, -signal.SIGTERM)
#: Nothing leaves on its own: every span and log line waits in the queue for the shutdown.
BUFFERED = {
    "OTEL_BSP_SCHEDULE_DELAY": "600000",
    "OTEL_BLRP_SCHEDULE_DELAY": "600000",
    "NARROWS_ACCESS_LOG": "true",
}


def _dir(tmp: Path, name: str) -> Path:
    d = tmp / name / "data"
    d.mkdir(parents=True)
    return d


def _send(url: str, prefix: str) -> list[str]:
    ids = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(REQUESTS):
            trace_id = f"{prefix}{i:030x}"
            header = {"traceparent": f"00-{trace_id}-{'3' * 16}-01"}
            assert client.get(f"/items/{i + 1}", headers=header).status_code == 200
            ids.append(trace_id)
    return ids


def _stored(col: CollectorProc, trace_id: str) -> bool:
    return httpx.get(f"{col.query_url}/api/v3/traces/{trace_id}", timeout=5).status_code == 200


def _term(proc: OwnedProcess) -> tuple[int, float]:
    """SIGTERM the demo (its process only, as a supervisor or `kill` would) → (code, s)."""
    started = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    code = proc.proc.wait(30)
    return code, time.monotonic() - started


def test_sigterm_flushes_queued_spans_and_logs_to_a_live_collector(tmp_path: Path) -> None:
    port = free_port()
    with collector_proc(_dir(tmp_path, "collector"), otlp_port=port, wait=False) as col:
        env = {**BUFFERED, "OTEL_EXPORTER_OTLP_ENDPOINT": col.otlp_url}
        with demo_proc(_dir(tmp_path, "demo"), "--seed-items", "100", env=env, wait=False) as demo:
            wait_ready(col, demo)
            ids = _send(demo.url, "d0")
            time.sleep(1)
            assert not _stored(col, ids[0])  # still queued in the demo
            code, took = _term(demo.proc)
            log = demo.proc.log()
        missing = [t for t in ids if not _stored(col, t)]
        logs = httpx.get(
            f"{col.query_url}/api/narrows/logs", params={"traceId": ids[-1]}, timeout=5
        ).json()["logs"]
    print("FIGURES " + json.dumps({"scenario": 6, "flushed": REQUESTS, "exit_s": round(took, 2)}))
    assert code in EXITED, log[-2000:]
    assert took < 5.0
    assert missing == []
    assert any(line.get("body") == "http.request" for line in logs), logs
    assert "Traceback" not in log


@contextmanager
def _blackhole() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    port = free_port()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    try:
        yield port
    finally:
        sock.close()


def test_sigterm_with_the_collector_down_exits_within_the_shutdown_bound(tmp_path: Path) -> None:
    """Two demos at once: one whose collector refuses connections, one whose collector
    accepts them and never answers (the exporter's own 30 s timeout must not matter)."""
    bound = 2.0
    with _blackhole() as hole, ExitStack() as es:
        demos = {}
        for down, port in (("refusing", free_port()), ("never-answering", hole)):
            env = {
                **BUFFERED,
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                "NARROWS_SHUTDOWN_TIMEOUT": str(bound),
                "OTEL_EXPORTER_OTLP_TIMEOUT": "30000",
            }
            demos[down] = es.enter_context(
                demo_proc(
                    _dir(tmp_path, down), "--seed-items", "100", env=env, name=down, wait=False
                )
            )
        wait_ready(*demos.values())
        for demo in demos.values():
            _send(demo.url, "e0")
        started = time.monotonic()
        for demo in demos.values():
            demo.proc.proc.send_signal(signal.SIGTERM)
        exits = {}
        for down, demo in demos.items():
            code = demo.proc.proc.wait(30)
            exits[down] = (code, time.monotonic() - started, demo.proc.log())
    for down, (code, took, log) in exits.items():
        print("FIGURES " + json.dumps({"scenario": 6, "down": down, "exit_s": round(took, 2)}))
        assert code in EXITED, log[-2000:]
        assert took < bound + 3.0, f"exit took {took:.1f}s with the collector {down}"
        assert "Traceback" not in log
