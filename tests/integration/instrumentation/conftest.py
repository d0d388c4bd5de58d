"""Integration fixtures for instrumentation: run small apps against a real collector."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from narrows.ports import free_port
from tests.support.procs import OwnedProcess, wait_http
from tests.support.stack import CollectorProc, collector_proc

APP = "tests.integration.instrumentation.apps.shop:app"
REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _plain_http_client() -> Iterator[None]:
    """Our requests carry hand-made traceparent headers; should another test have
    instrumented httpx in this process, it must not replace them."""
    from opentelemetry.instrumentation.utils import suppress_http_instrumentation

    with suppress_http_instrumentation():
        yield


@pytest.fixture
def collector(data_dir: Path) -> Iterator[CollectorProc]:
    with collector_proc(data_dir) as col:
        yield col


AppStarter = Callable[..., tuple[OwnedProcess, str]]


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[AppStarter]:
    """``start_app(name, env, argv=None)`` → (process, base URL); stopped after the test."""
    stack = ExitStack()

    def start(
        name: str, env: dict[str, str], argv: list[str] | None = None
    ) -> tuple[OwnedProcess, str]:
        port = free_port()
        cmd = argv or [sys.executable, "-m", "uvicorn", APP, "--log-level", "warning"]
        cmd = [*cmd, "--port", str(port)] if "--bind" not in " ".join(cmd) else cmd
        cmd = [c.replace("{port}", str(port)) for c in cmd]
        proc = OwnedProcess.start(
            name,
            cmd,
            tmp_path / "logs",
            env={"OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_BLRP_SCHEDULE_DELAY": "200", **env},
        )
        stack.callback(proc.stop)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", 60, proc)
        return proc, url

    yield start
    stack.close()


def spans_of(doc: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(resource, span) pairs from a Jaeger API v3 (OTLP JSON) get-trace answer."""
    return [
        (rs.get("resource", {}), span)
        for rs in doc["result"]["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    ]


def attrs(obj: dict[str, Any]) -> dict[str, Any]:
    """OTLP JSON attributes as a plain dict (string/int/bool/double values)."""
    out: dict[str, Any] = {}
    for kv in obj.get("attributes", []):
        value = kv["value"]
        out[kv["key"]] = next(iter(value.values())) if value else None
    return out


def get_trace(col: CollectorProc, trace_id: str, want: int, timeout: float = 15) -> list[Any]:
    """Poll until the trace has at least ``want`` spans (batches land at different times)."""
    deadline = time.monotonic() + timeout
    found: list[Any] = []
    while time.monotonic() < deadline:
        resp = httpx.get(f"{col.query_url}/api/v3/traces/{trace_id}", timeout=5)
        if resp.status_code == 200:
            found = spans_of(resp.json())
            if len(found) >= want:
                return found
        time.sleep(0.2)
    raise AssertionError(f"trace {trace_id}: wanted {want} spans, found {len(found)}")


def logs_of(col: CollectorProc, trace_id: str, want: int, timeout: float = 15) -> list[Any]:
    """Poll until at least ``want`` log records of the trace are stored (they are batched)."""
    deadline = time.monotonic() + timeout
    found: list[Any] = []
    while time.monotonic() < deadline:
        resp = httpx.get(
            f"{col.query_url}/api/narrows/logs", params={"traceId": trace_id}, timeout=5
        )
        if resp.status_code == 200:
            found = resp.json()["logs"]
            if len(found) >= want:
                return found
        time.sleep(0.2)
    raise AssertionError(f"logs of {trace_id}: wanted {want}, found {found}")


def traceparent(i: int, prefix: str = "ab") -> tuple[str, str]:
    """A fresh sampled W3C trace id per request, so each request's trace can be fetched."""
    trace_id = f"{prefix}{i:030x}"
    return trace_id, f"00-{trace_id}-{'1' * 16}-01"
