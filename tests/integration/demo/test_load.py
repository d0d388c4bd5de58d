"""`narrows load` against a real demo: steps, JSON, open loop without coordinated omission,
client spans joined to the demo's traces, clean stops — and faults visible where they act."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from demo_app.load import LoadConfig, LoadGenerator
from demo_app.settings import DemoSettings
from demo_app.shards import shard_for
from tests.support.demo import DemoServer, SpanCapture, demo_server
from tests.support.procs import narrows_cmd

pytestmark = pytest.mark.integration

QUIET = {"OTEL_TRACES_EXPORTER": "none"}


def _load(demo: DemoServer, *args: str, timeout: float = 60) -> dict[str, Any]:
    """Run `narrows load --json` as a user would and return its report."""
    import os

    result = subprocess.run(
        narrows_cmd("load", "--target", demo.url, "--json", "--progress", "0", *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **QUIET},
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = DemoSettings(data_dir=tmp_path_factory.mktemp("data"), seed_items=3000, cache="none")
    with demo_server(settings) as server:
        yield server


@pytest.fixture
def clean(demo: DemoServer) -> Any:
    try:
        yield demo
    finally:
        demo.service.faults.clear_all()


def test_slow_shard_raises_p95_of_requests_touching_that_shard_by_its_delay(
    clean: DemoServer,
) -> None:
    """The issue's "done when": slow_shard shard=2 delay_ms=50 moves shard 2's p95 by ≈50 ms
    and the other shards' by little. Timing on a shared 2-core machine: up to three tries."""
    args = ("--rate", "60", "--duration", "4", "--mix", "get=1", "--max-id", "3000")
    tries = []
    for attempt in range(3):
        before = _load(clean, *args, "--seed", str(10 + attempt))["steps"][0]["by_shard"]
        clean.service.faults.set("slow_shard", {"shard": 2, "delay_ms": 50})
        after = _load(clean, *args, "--seed", str(20 + attempt))["steps"][0]["by_shard"]
        clean.service.faults.clear("slow_shard")
        rise = {s: after[s]["latency_ms"]["p95"] - before[s]["latency_ms"]["p95"] for s in before}
        tries.append(rise)
        if (
            35 <= rise["2"] <= 90
            and all(abs(rise[s]) < 20 for s in ("0", "1", "3"))
            and after["2"]["latency_ms"]["p50"] >= 50
        ):
            return
    raise AssertionError(f"p95 rise per shard (ms), each try: {tries}")


def test_closed_loop_steps_report_throughput_errors_and_percentiles(clean: DemoServer) -> None:
    report = _load(
        clean, "--concurrency", "1,3", "--step-seconds", "1.5", "--mix", "get=3,search=1"
    )
    assert report["mode"] == "closed"
    assert report["shards"] == 4
    steps = report["steps"]
    assert [s["concurrency"] for s in steps] == [1, 3]
    for step in steps:
        assert step["requests"] > 10
        assert step["throughput_rps"] > 5
        assert step["error_rate"] == 0.0
        lat = step["latency_ms"]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert set(step["by_endpoint"]) == {"get", "search"}
        assert set(step["by_shard"]) == {"0", "1", "2", "3"}
        # every search touches all four shards
        assert all(
            v["requests"] >= step["by_endpoint"]["search"]["requests"]
            for v in step["by_shard"].values()
        )


def test_open_loop_sends_poisson_arrivals_at_the_rate(clean: DemoServer) -> None:
    report = _load(clean, "--rate", "40", "--duration", "3", "--mix", "get=1")
    step = report["steps"][0]
    assert report["mode"] == "open"
    assert step["rate"] == 40
    assert 80 <= step["requests"] <= 160  # Poisson: 120 expected


def test_the_request_bound_is_respected(clean: DemoServer) -> None:
    report = _load(clean, "--concurrency", "4", "--step-seconds", "30", "--requests", "25")
    assert sum(s["requests"] for s in report["steps"]) == 25


def test_open_loop_latency_counts_from_the_intended_send_time(
    tmp_path: Path, spans: SpanCapture
) -> None:
    """With one request in flight and a 40 ms service, 50/s cannot keep up: latency measured
    from the intended time grows (coordinated omission would hide it), while the service
    itself still answers in ≈40 ms."""
    settings = DemoSettings(data_dir=tmp_path, shards=1, seed_items=100, cache="none")
    with demo_server(settings) as demo:
        demo.service.faults.set("slow_shard", {"shard": 0, "delay_ms": 40})
        config = LoadConfig(
            target=demo.url,
            rates=(50.0,),
            duration_s=2.0,
            max_inflight=1,
            mix={"get": 1.0},
            max_id=100,
            progress_s=0,
        )
        report = asyncio.run(LoadGenerator(config).run())
    step = report.steps[0].to_dict()
    assert step["latency_ms"]["p95"] > 400
    servers = [
        s for s in spans.spans() if s.name == "GET /items/{item_id}" and s.kind.name == "SERVER"
    ]
    assert servers
    durations = sorted((s.end_time - s.start_time) / 1e6 for s in servers)
    assert durations[len(durations) // 2] < 150


def test_client_spans_start_at_the_intended_time_and_parent_the_demos_spans(
    clean: DemoServer, spans: SpanCapture
) -> None:
    config = LoadConfig(
        target=clean.url,
        concurrency=(2,),
        step_seconds=1.0,
        mix={"get": 1.0},
        max_id=3000,
        progress_s=0,
        max_requests=20,
    )
    asyncio.run(LoadGenerator(config).run())
    clients = {
        s.context.span_id: s
        for s in spans.spans()
        if s.kind.name == "CLIENT" and s.name.startswith("GET /items")
    }
    servers = [s for s in spans.spans() if s.kind.name == "SERVER"]
    assert len(clients) == 20
    joined = [s for s in servers if s.parent is not None and s.parent.span_id in clients]
    assert len(joined) == 20
    for server in joined:
        client = clients[server.parent.span_id]  # type: ignore[union-attr]
        assert client.context.trace_id == server.context.trace_id
        # the client span opens at the intended send time, before the demo sees the request
        # (the demo's span may close a moment after the client has its response)
        assert client.start_time <= server.start_time <= client.end_time
        assert client.attributes["http.response.status_code"] == 200
        assert client.attributes["url.template"] == "/items/{item_id}"


def test_hot_keys_read_from_the_service_concentrate_the_traffic(clean: DemoServer) -> None:
    clean.service.faults.set("hot_keys", {"keys": 2, "share": 1.0})
    hot = clean.service.faults.hot_ids()
    report = _load(clean, "--rate", "40", "--duration", "1.5", "--mix", "get=1", "--max-id", "3000")
    touched = {s for s, v in report["steps"][0]["by_shard"].items() if v["requests"]}
    assert touched == {str(shard_for(k, 4)) for k in hot}


def test_sigint_stops_an_unbounded_run_cleanly_with_the_results_so_far(
    clean: DemoServer, tmp_path: Path
) -> None:
    import os

    proc = subprocess.Popen(
        narrows_cmd(
            "load",
            "--target",
            clean.url,
            "--rate",
            "20",
            "--duration",
            "0",
            "--json",
            "--progress",
            "0.5",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **QUIET},
    )
    try:
        deadline = time.monotonic() + 20
        assert proc.stderr is not None
        while "requests" not in proc.stderr.readline():  # first progress line
            assert time.monotonic() < deadline
            assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    report = json.loads(out)
    assert report["stopped_early"] is True
    assert report["steps"][0]["requests"] > 0


def test_an_unreachable_target_is_one_line_and_exit_1(free_port: int) -> None:
    result = subprocess.run(
        narrows_cmd("load", "--target", f"http://127.0.0.1:{free_port}", "--duration", "1"),
        capture_output=True,
        text=True,
        timeout=30,
        env={**__import__("os").environ, **QUIET},
    )
    assert result.returncode == 1
    assert "demo unreachable at http://127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr
