"""The supervisor keeps replicas running: a dead one is restarted with backoff, one with a
down marker is stopped and held down, and any other child dying still stops everything."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from narrows.children import ChildSpec
from narrows.supervisor import ChildFailed, Supervisor
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[tuple[Supervisor, list[str]]]:
    lines: list[str] = []
    supervisor = Supervisor(tmp_path / "logs", lines.append)
    try:
        yield supervisor, lines
    finally:
        supervisor.stop_all()


def _pid(supervisor: Supervisor, name: str) -> int:
    return next(int(p["pid"]) for p in supervisor.processes() if p["name"] == name)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_dead_replica_is_restarted_and_a_marked_one_held_down(
    sup: tuple[Supervisor, list[str]], tmp_path: Path
) -> None:
    supervisor, lines = sup
    marker = tmp_path / "run" / "down" / "catalog-1"
    restarts: list[int] = []
    supervisor.on_restart = lambda: restarts.append(1)
    supervisor.start(
        ChildSpec("catalog-1", SLEEPER, None, restart=True, down_marker=marker, service="s")
    )
    supervisor.wait_ready(10)
    first = _pid(supervisor, "catalog-1")
    os.kill(first, signal.SIGKILL)

    def restarted() -> bool:
        supervisor.check_alive(restarting=True)
        return _pid(supervisor, "catalog-1") != first

    wait_for(restarted, 10, "the replica to be restarted", interval=0.1)
    assert restarts == [1]
    assert any("restarting in 1s" in line for line in lines)

    second = _pid(supervisor, "catalog-1")
    marker.parent.mkdir(parents=True)
    marker.touch()
    supervisor.check_alive(restarting=True)
    assert not _alive(second)
    deadline = time.monotonic() + 2.5  # longer than the first restart pause
    while time.monotonic() < deadline:
        supervisor.check_alive(restarting=True)
        time.sleep(0.1)
    assert _pid(supervisor, "catalog-1") == second  # held down, not restarted
    marker.unlink()
    supervisor.check_alive(restarting=True)
    third = _pid(supervisor, "catalog-1")
    assert third != second
    assert _alive(third)


def test_any_other_child_dying_still_stops_everything(
    sup: tuple[Supervisor, list[str]],
) -> None:
    supervisor, _ = sup
    supervisor.start(ChildSpec("gateway", SLEEPER, None, service="g"))
    supervisor.wait_ready(10)
    os.kill(_pid(supervisor, "gateway"), signal.SIGKILL)
    time.sleep(0.3)
    with pytest.raises(ChildFailed, match="gateway exited"):
        supervisor.check_alive(restarting=True)
