"""`narrows up`: start every part as a child process, wait until each is healthy, supervise.

Children run in their own process groups and get SIGTERM if this process dies
(``PR_SET_PDEATHSIG``), so neither Ctrl-C nor a crash of the supervisor leaves orphans.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from narrows.endpoints import ENDPOINTS_FILE, Endpoints
from narrows.ports import PortInUse, PortPlan

__all__ = ["ChildSpec", "Supervisor", "add_arguments", "run"]

STOP_TIMEOUT_S = 8.0
SCRAPE_INTERVAL = "5s"
_PR_SET_PDEATHSIG = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `narrows up` (port flags share their names with the single-part commands)."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".narrows"),
        help="where the DuckDB file, logs and endpoints.json live (default .narrows/)",
    )
    parser.add_argument("--demo-port", type=int, help="demo app port (default 8000)")
    parser.add_argument("--otlp-port", type=int, help="collector OTLP/HTTP port (default 4318)")
    parser.add_argument("--zipkin-port", type=int, help="collector Zipkin port (default 9411)")
    parser.add_argument("--query-port", type=int, help="collector query API port (default 16686)")
    parser.add_argument("--dashboard-port", type=int, help="dashboard port (default 8501)")
    parser.add_argument(
        "--ports",
        choices=["default", "free"],
        default="default",
        help="'free' picks free ports for every port not given explicitly",
    )
    parser.add_argument(
        "--load", action="store_true", help="also run the load generator against the demo app"
    )
    demo = parser.add_argument_group("demo service (passed to `narrows demo`)")
    demo.add_argument("--shards", type=int, help="number of shards (default 4)")
    demo.add_argument("--cache", help="memory (default), none, or a redis:// URL")
    demo.add_argument(
        "--shard-dsn",
        action="append",
        metavar="DSN",
        help="PostgreSQL shards: a DSN template with {i}, or once per shard",
    )
    demo.add_argument(
        "--fault",
        action="append",
        metavar="NAME[:k=v,…]",
        help="switch a demo fault on at start, e.g. slow_shard:shard=2,delay_ms=50",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=90.0,
        help="seconds to wait for every service to become healthy (default 90)",
    )


@dataclass
class ChildSpec:
    """One child process: how to start it and how to tell it is ready."""

    name: str
    argv: list[str]
    health_url: str | None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class _Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    ready: bool = False


def _die_with_parent() -> None:
    """Runs in the child before exec: ask the kernel to SIGTERM it when we die."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: Ctrl-C handling still stops the children
        pass


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:]) or "    (log is empty)"


class Supervisor:
    """Starts, watches and stops the children; reports progress on ``out``."""

    def __init__(self, log_dir: Path, out: Callable[[str], None]) -> None:
        self._log_dir = log_dir
        self._out = out
        self._children: list[_Child] = []
        self._stopping = False

    def start(self, spec: ChildSpec) -> None:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self._log_dir / f"{spec.name}.log"
        log_file = log_path.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env}
        proc = subprocess.Popen(
            spec.argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._children.append(_Child(spec, proc, log_path, log_file))

    def wait_ready(self, timeout: float) -> None:
        """Block until every child answers its health check; raise on death or timeout."""
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        with httpx.Client(timeout=1.0) as client:
            while True:
                self.check_alive()
                pending = [c for c in self._children if not c.ready]
                for child in pending:
                    if child.spec.health_url is None or _healthy(client, child.spec.health_url):
                        child.ready = True
                        self._out(
                            f"  {child.spec.name:<10} ready ({time.monotonic() - started:.1f}s)"
                        )
                if all(c.ready for c in self._children):
                    return
                if self._stopping:
                    raise _Stop
                if time.monotonic() > deadline:
                    names = ", ".join(c.spec.name for c in self._children if not c.ready)
                    raise ChildFailed(f"{names} did not become healthy within {timeout:.0f}s")
                time.sleep(0.2)

    def check_alive(self) -> None:
        """Raise ChildFailed naming the first child that exited, with its last log lines."""
        for child in self._children:
            code = child.proc.poll()
            if code is not None:
                raise ChildFailed(
                    f"{child.spec.name} exited with code {code}; last lines of "
                    f"{child.log_path}:\n{_tail(child.log_path)}"
                )

    def request_stop(self, *_: object) -> None:
        self._stopping = True

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop_all(self) -> None:
        """SIGTERM every child's process group, newest first; SIGKILL what outlives the bound."""
        for child in reversed(self._children):
            _signal_group(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in reversed(self._children):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                self._out(f"  {child.spec.name} did not stop in time; killing it")
                _signal_group(child.proc, signal.SIGKILL)
                child.proc.wait(timeout=5)
            # The group may hold grandchildren even after the leader exited.
            _signal_group(child.proc, signal.SIGKILL)
            child.log_file.close()


class ChildFailed(Exception):
    """A child died or never became healthy."""


class _Stop(Exception):
    """Ctrl-C or SIGTERM arrived while starting."""


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _healthy(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def plan_children(args: argparse.Namespace, ports: PortPlan, data_dir: Path) -> list[ChildSpec]:
    """The processes `narrows up` runs, with the flags that connect them."""
    host = "127.0.0.1"
    me = [sys.executable, "-m", "narrows"]
    collector = ChildSpec(
        "collector",
        [
            *me,
            "collector",
            "--data-dir",
            str(data_dir),
            "--otlp-port",
            str(ports.otlp),
            "--zipkin-port",
            str(ports.zipkin),
            "--query-port",
            str(ports.query),
            "--scrape",
            # Every 5 s: the Shards page's pool wait comes from this histogram.
            f"http://{host}:{ports.demo}/metrics,{SCRAPE_INTERVAL}",
        ],
        f"http://{host}:{ports.query}/healthz",
    )
    demo = ChildSpec(
        "demo",
        [
            *me,
            "demo",
            "--data-dir",
            str(data_dir),
            "--demo-port",
            str(ports.demo),
            *_demo_options(args),
        ],
        f"http://{host}:{ports.demo}/healthz",
        env={**_otel_env(ports), **_demo_env()},
    )
    dashboard = ChildSpec(
        "dashboard",
        [
            *me,
            "dashboard",
            "--dashboard-port",
            str(ports.dashboard),
            "--query-url",
            f"http://{host}:{ports.query}",
        ],
        f"http://{host}:{ports.dashboard}/_stcore/health",
    )
    return [collector, demo, dashboard]


def _otel_env(ports: PortPlan) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports.otlp}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        # Traces show up within about a second instead of the SDK's default five.
        "OTEL_BSP_SCHEDULE_DELAY": os.environ.get("OTEL_BSP_SCHEDULE_DELAY", "1000"),
    }


def _demo_env() -> dict[str, str]:
    """The demo logs one access line per request (as OTLP logs too), so every trace on the
    dashboard has logs to show; ``NARROWS_ACCESS_LOG=false`` turns it off."""
    return {"NARROWS_ACCESS_LOG": os.environ.get("NARROWS_ACCESS_LOG", "true")}


def _demo_options(args: argparse.Namespace) -> list[str]:
    """`narrows up`'s demo flags, passed through unchanged (`narrows demo` validates them)."""
    out: list[str] = []
    if getattr(args, "shards", None) is not None:
        out += ["--shards", str(args.shards)]
    if getattr(args, "cache", None):
        out += ["--cache", args.cache]
    for dsn in getattr(args, "shard_dsn", None) or []:
        out += ["--shard-dsn", dsn]
    for fault in getattr(args, "fault", None) or []:
        out += ["--fault", fault]
    return out


def load_child(ports: PortPlan) -> ChildSpec:
    return ChildSpec(
        "load",
        [
            sys.executable,
            "-m",
            "narrows",
            "load",
            "--target",
            f"http://127.0.0.1:{ports.demo}",
            "--duration",
            "0",
        ],
        None,
        env=_otel_env(ports),
    )


def run(args: argparse.Namespace) -> int:
    """Start everything, print the URLs, supervise until Ctrl-C/SIGTERM or a child dies."""
    out = _printer()
    data_dir: Path = args.data_dir.resolve()
    requested = {
        "demo": args.demo_port,
        "otlp": args.otlp_port,
        "zipkin": args.zipkin_port,
        "query": args.query_port,
        "dashboard": args.dashboard_port,
    }
    try:
        ports = PortPlan.resolve(requested, free=args.ports == "free", host="127.0.0.1")
    except PortInUse as exc:
        print(f"narrows up: {exc}", file=sys.stderr)
        return 2
    data_dir.mkdir(parents=True, exist_ok=True)
    sup = Supervisor(data_dir / "logs", out)
    previous = {s: signal.signal(s, sup.request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    endpoints_path = data_dir / ENDPOINTS_FILE
    try:
        out(f"narrows up: starting in {data_dir} (logs in {data_dir / 'logs'})")
        for spec in plan_children(args, ports, data_dir):
            sup.start(spec)
        sup.wait_ready(args.startup_timeout)
        if args.load:
            sup.start(load_child(ports))
            sup.wait_ready(args.startup_timeout)
        endpoints = _endpoints(ports)
        endpoints.write(data_dir)
        out("all services ready")
        out(f"  demo       {endpoints.demo}")
        out(
            f"  collector  OTLP {endpoints.otlp}  Zipkin {endpoints.zipkin}  "
            f"query {endpoints.query}"
        )
        out(f"  dashboard  {endpoints.dashboard}")
        out("press Ctrl-C to stop")
        while not sup.stopping:
            sup.check_alive()
            time.sleep(0.2)
        out("narrows up: stopping")
        return 0
    except _Stop:
        out("narrows up: interrupted while starting; stopping")
        return 130
    except ChildFailed as exc:
        print(f"narrows up: {exc}", file=sys.stderr)
        out("narrows up: stopping the other services")
        return 1
    finally:
        sup.stop_all()
        endpoints_path.unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _endpoints(ports: PortPlan) -> Endpoints:
    host = "http://127.0.0.1"
    return Endpoints(
        demo=f"{host}:{ports.demo}",
        otlp=f"{host}:{ports.otlp}",
        zipkin=f"{host}:{ports.zipkin}",
        query=f"{host}:{ports.query}",
        dashboard=f"{host}:{ports.dashboard}",
        pid=os.getpid(),
    )


def _printer() -> Callable[[str], None]:
    def out(line: str) -> None:
        print(line, flush=True)

    return out
