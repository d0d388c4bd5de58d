"""`narrows up`: the stack starts, a demo request becomes a visible trace, Ctrl-C cleans up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.procs import OwnedProcess, alive, descendants, narrows_cmd, wait_for
from tests.support.stack import narrows_up, wait_trace

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_request_becomes_a_trace_in_api_and_browser(
    tmp_path: Path,
    browser,
    artifacts_dir: Path,  # type: ignore[no-untyped-def]
) -> None:
    with narrows_up(tmp_path / "data") as stack:
        ep = stack.endpoints
        trace_id = "0af7651916cd43dd8448eb211c80319c"
        resp = httpx.get(
            f"{ep['demo']}/items/42",
            timeout=5,
            headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"},
        )
        assert resp.status_code == 200
        wait_trace(ep["query"], trace_id, timeout=10)

        page = browser.new_page()
        try:
            page.goto(f"{ep['dashboard']}/?trace_id={trace_id}", wait_until="networkidle")
            page.get_by_text(f"Trace {trace_id}").wait_for(timeout=30_000)
            page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
            assert page.locator("[data-testid='stException']").count() == 0
            page.screenshot(path=str(artifacts_dir / "foundation-trace.png"), full_page=True)
        finally:
            page.close()


def test_sigint_stops_every_child_within_ten_seconds(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = OwnedProcess.start(
        "narrows-up",
        narrows_cmd("up", "--ports", "free", "--data-dir", str(data), "--load"),
        tmp_path / "logs",
    )
    try:
        wait_for(lambda: "all services ready" in proc.log(), 120, "narrows up", proc)
        children = descendants(proc.proc.pid)
        assert len(children) >= 4  # collector, demo, dashboard, load
        started = time.monotonic()
        os.kill(proc.proc.pid, signal.SIGINT)
        proc.proc.wait(timeout=15)
        assert time.monotonic() - started < 10
        wait_for(lambda: not any(map(alive, children)), 5, "children to exit")
        assert not (data / "endpoints.json").exists()
    finally:
        proc.stop()


def test_taken_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "narrows",
                "up",
                "--data-dir",
                str(tmp_path),
                "--ports",
                "free",
                "--demo-port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert f"port {port}" in result.stderr
    assert "--demo-port" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_dying_child_is_named_with_its_log_and_the_rest_stop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "narrows.duckdb").write_bytes(b"this is not a duckdb file" * 100)
    result = subprocess.run(
        [sys.executable, "-m", "narrows", "up", "--data-dir", str(data), "--ports", "free"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "collector exited" in result.stderr
    assert "last lines" in result.stderr
    assert "Traceback (most recent call last)" not in result.stdout
