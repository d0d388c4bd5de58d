"""`narrows fault` and `narrows demo` from the shell: they work, and wrong input is one line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo_app.settings import DemoSettings
from narrows.endpoints import Endpoints
from tests.support.demo import DemoServer, demo_server
from tests.support.procs import OwnedProcess, narrows_cmd, wait_http

pytestmark = pytest.mark.integration

QUIET = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}


def _narrows(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        narrows_cmd(*args), capture_output=True, text=True, timeout=timeout, env=QUIET
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = DemoSettings(data_dir=tmp_path_factory.mktemp("data"), seed_items=100)
    with demo_server(settings) as server:
        yield server


def test_fault_set_list_clear_through_demo_url(demo: DemoServer) -> None:
    url = demo.url
    done = _narrows("fault", "set", "slow_shard", "shard=2", "delay_ms=50", "--demo-url", url)
    assert done.returncode == 0, done.stderr
    assert "slow_shard" in done.stdout
    assert "ON" in done.stdout
    assert demo.service.faults.params("slow_shard") == {
        "shard": 2,
        "delay_ms": 50.0,
        "jitter_ms": 0.0,
        "seed": 0,
    }
    listing = _narrows("fault", "list", "--demo-url", url)
    assert listing.returncode == 0
    assert "slow_shard         ON  shard=2, delay_ms=50.0" in listing.stdout
    assert "cpu_burn" in listing.stdout
    assert "route (str" in listing.stdout
    assert _narrows("fault", "clear", "slow_shard", "--demo-url", url).returncode == 0
    assert demo.service.faults.params("slow_shard") is None
    _narrows("fault", "set", "cache_outage", "--demo-url", url)
    _narrows("fault", "set", "sequential_fanout", "--demo-url", url)
    assert _narrows("fault", "clear", "--demo-url", url).returncode == 0
    assert not any(f["active"] for f in demo.service.faults.describe())


def test_fault_finds_the_demo_through_endpoints_json(demo: DemoServer, tmp_path: Path) -> None:
    Endpoints(demo.url, "http://x", "http://x", "http://x", "http://x", os.getpid()).write(tmp_path)
    done = _narrows("fault", "set", "cache_ttl", "seconds=0.5", "--data-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert demo.service.faults.params("cache_ttl") == {"seconds": 0.5, "seed": 0}
    as_json = _narrows("fault", "list", "--json", "--data-dir", str(tmp_path))
    active = [f["name"] for f in __import__("json").loads(as_json.stdout)["faults"] if f["active"]]
    assert active == ["cache_ttl"]
    _narrows("fault", "clear", "--data-dir", str(tmp_path))


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["set", "nope"], 2, "unknown fault 'nope'; known faults: slow_shard"),
        (["set", "slow_shard", "shard=9"], 2, "out of range 0 … 3"),
        (["set", "slow_shard", "shard"], 2, "expected key=value"),
        (["set"], 2, "set needs a fault name"),
        (["clear", "nope"], 2, "unknown fault"),
        (["list", "slow_shard"], 2, "list takes no fault name"),
        (["clear", "slow_shard", "x=1"], 2, "clear takes no key=value"),
    ],
)
def test_fault_errors_are_one_line(
    demo: DemoServer, args: list[str], code: int, message: str
) -> None:
    done = _narrows("fault", *args, "--demo-url", demo.url)
    assert done.returncode == code
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_fault_without_a_running_stack_says_how_to_start_one(
    tmp_path: Path, free_port: int
) -> None:
    missing = _narrows("fault", "list", "--data-dir", str(tmp_path))
    assert missing.returncode == 2
    assert "no running `narrows up` found" in missing.stderr
    down = _narrows("fault", "list", "--demo-url", f"http://127.0.0.1:{free_port}")
    assert down.returncode == 1
    assert "demo unreachable" in down.stderr


def test_narrows_demo_serves_with_shards_and_a_fault_from_the_command_line(
    tmp_path: Path, free_port: int
) -> None:
    proc = OwnedProcess.start(
        "demo",
        narrows_cmd(
            "demo",
            "--data-dir",
            str(tmp_path / "data"),
            "--demo-port",
            str(free_port),
            "--shards",
            "2",
            "--seed-items",
            "50",
            "--pool-size",
            "2",
            "--fault",
            "slow_shard:shard=1,delay_ms=5",
        ),
        tmp_path,
        env={"OTEL_TRACES_EXPORTER": "none"},
    )
    try:
        wait_http(f"http://127.0.0.1:{free_port}/healthz", 60, proc)
        base = f"http://127.0.0.1:{free_port}"
        assert httpx.get(f"{base}/healthz", timeout=5).json()["shards"] == 2
        assert httpx.get(f"{base}/items/50", timeout=5).status_code == 200
        assert httpx.get(f"{base}/items/51", timeout=5).status_code == 404
        faults = httpx.get(f"{base}/admin/faults", timeout=5).json()["faults"]
        assert [f["name"] for f in faults if f["active"]] == ["slow_shard"]
        assert (tmp_path / "data" / "demo" / "2-shards" / "shard_1.sqlite").exists()
    finally:
        proc.stop()
    assert "fault changed: slow_shard off -> {'shard': 1, 'delay_ms': 5.0" in proc.log()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shards", "0"], "--shards must be 1 … 64"),
        (["--pool-size", "100"], "--pool-size must be 1 … 64"),
        (["--cache", "memcached://x"], "--cache must be memory, none or a redis:// URL"),
        (["--fault", "nope"], "unknown fault 'nope'"),
        (["--fault", "slow_shard:shard=7"], "out of range 0 … 3"),
        (
            ["--shard-dsn", "postgresql://h/a", "--shard-dsn", "postgresql://h/b"],
            "2 DSN(s) for 4 shards",
        ),
        (["--shard-dsn", "mysql://h/a_{i}"], "must be a PostgreSQL URL"),
    ],
)
def test_narrows_demo_refuses_bad_settings_in_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = _narrows("demo", "--data-dir", str(tmp_path), *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
