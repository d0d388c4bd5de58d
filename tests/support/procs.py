"""Start and stop processes the tests own, and wait for them to answer."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["OwnedProcess", "alive", "descendants", "narrows_cmd", "rss_mb", "wait_for", "wait_http"]


def narrows_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "narrows", *args]


@dataclass
class OwnedProcess:
    """A child in its own process group, with its output in a log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        env: dict[str, str] | None = None,
        user: str | None = None,
    ) -> OwnedProcess:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        if user is not None and os.geteuid() == 0:
            argv = ["runuser", "-u", user, "--", *argv]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                start_new_session=True,
            )
        return cls(name, proc, log_path)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):  # grandchildren
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for pid {pid}")


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, grandchildren, …), from ``/proc``."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid …; comm may contain spaces and parentheses
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    proc: OwnedProcess | None = None,
    interval: float = 0.1,
) -> None:
    """Poll ``check`` until true; fail with the process log if it died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise AssertionError(
                f"{proc.name} exited ({proc.proc.returncode}) while waiting for "
                f"{what}:\n{proc.log()[-3000:]}"
            )
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(interval)
    tail = f"\n{proc.name} log:\n{proc.log()[-3000:]}" if proc else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{tail}")


def wait_http(url: str, timeout: float = 30.0, proc: OwnedProcess | None = None) -> None:
    def ok() -> bool:
        return httpx.get(url, timeout=1.0).status_code == 200

    wait_for(ok, timeout, f"{url} to answer 200", proc)
