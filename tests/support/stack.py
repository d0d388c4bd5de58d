"""Start Narrows processes for tests: a collector, a demo app, a whole `narrows up`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from narrows.ports import free_port
from tests.support.procs import OwnedProcess, narrows_cmd, wait_for, wait_http

__all__ = [
    "CollectorProc",
    "DemoProc",
    "UpStack",
    "collector_proc",
    "demo_proc",
    "narrows_up",
    "wait_ready",
    "wait_trace",
]


@dataclass
class CollectorProc:
    proc: OwnedProcess
    data_dir: Path
    otlp_port: int
    zipkin_port: int
    query_port: int

    @property
    def otlp_url(self) -> str:
        return f"http://127.0.0.1:{self.otlp_port}"

    @property
    def zipkin_url(self) -> str:
        return f"http://127.0.0.1:{self.zipkin_port}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"


@contextmanager
def collector_proc(
    data_dir: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    name: str = "collector",
    otlp_port: int | None = None,
    wait: bool = True,
) -> Iterator[CollectorProc]:
    """`narrows collector` on free ports (``otlp_port`` when a sender started first needs
    it), stopped (SIGTERM) at the end. ``wait=False`` returns before it is healthy (start
    several at once, then ``wait_ready``)."""
    otlp, zipkin, query = otlp_port or free_port(), free_port(), free_port()
    proc = OwnedProcess.start(
        name,
        narrows_cmd(
            "collector",
            "--data-dir",
            str(data_dir),
            "--otlp-port",
            str(otlp),
            "--zipkin-port",
            str(zipkin),
            "--query-port",
            str(query),
            *extra,
        ),
        data_dir.parent / "logs",
        env=env,
    )
    try:
        if wait:
            wait_http(f"http://127.0.0.1:{query}/healthz", 60, proc)
        yield CollectorProc(proc, data_dir, otlp, zipkin, query)
    finally:
        proc.stop()


@dataclass
class DemoProc:
    proc: OwnedProcess
    url: str


@contextmanager
def demo_proc(
    data_dir: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    name: str = "demo",
    wait: bool = True,
) -> Iterator[DemoProc]:
    """`narrows demo` on a free port (its own process, so its memory and exit can be
    measured), stopped (SIGTERM) at the end; ``wait=False`` as for ``collector_proc``."""
    port = free_port()
    proc = OwnedProcess.start(
        name,
        narrows_cmd("demo", "--data-dir", str(data_dir), "--demo-port", str(port), *extra),
        data_dir.parent / "logs",
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        if wait:
            wait_http(f"{url}/healthz", 60, proc)
        yield DemoProc(proc, url)
    finally:
        proc.stop()


def wait_ready(*parts: CollectorProc | DemoProc) -> None:
    """Wait until every part started with ``wait=False`` answers its health check."""
    for part in parts:
        if isinstance(part, CollectorProc):
            wait_http(f"{part.query_url}/healthz", 60, part.proc)
        else:
            wait_http(f"{part.url}/healthz", 60, part.proc)


def wait_trace(query_url: str, trace_id: str, timeout: float = 10.0) -> dict[str, object]:
    """Poll get-trace until the trace is there; return the response JSON."""
    found: dict[str, object] = {}

    def there() -> bool:
        resp = httpx.get(f"{query_url}/api/v3/traces/{trace_id}", timeout=2)
        if resp.status_code == 200:
            found.update(resp.json())
            return True
        return False

    wait_for(there, timeout, f"trace {trace_id} at {query_url}")
    return found


@dataclass
class UpStack:
    proc: OwnedProcess
    data_dir: Path
    endpoints: dict[str, str]


@contextmanager
def narrows_up(
    data_dir: Path, *extra: str, timeout: float = 120, env: dict[str, str] | None = None
) -> Iterator[UpStack]:
    """`narrows up --ports free` until it prints 'all services ready'."""
    proc = OwnedProcess.start(
        "narrows-up",
        narrows_cmd(
            "up",
            "--ports",
            "free",
            "--data-dir",
            str(data_dir),
            *extra,
        ),
        data_dir.parent / "logs",
        env=env,
    )
    try:
        wait_for(
            lambda: "all services ready" in proc.log(),
            timeout,
            "narrows up to be ready",
            proc,
            interval=0.3,
        )
        endpoints = json.loads((data_dir / "endpoints.json").read_text())
        yield UpStack(proc, data_dir, endpoints)
    finally:
        started = time.monotonic()
        proc.stop()
        assert time.monotonic() - started < 30
