"""`narrows up`: start every part as a child process, wait until each is healthy, supervise.

Children run in their own process groups and get SIGTERM if this process dies
(``PR_SET_PDEATHSIG``), so neither Ctrl-C nor a crash of the supervisor leaves orphans.
They stop in tiers: the load generator first (no request is left in flight), then the
services and the dashboard (each service flushes its queued spans and logs on the way
out), and the collector last, so what the others flush still has somewhere to go.

Two topologies: ``single`` (the demo app, as `narrows demo`) and ``micro`` (gateway, orders
and catalog replicas, narrows/micro.py). In ``micro`` a replica that dies after start-up
is restarted with backoff instead of stopping everything, and one with a down marker is
stopped and kept down.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from narrows.children import ChildSpec
from narrows.endpoints import ENDPOINTS_FILE, Endpoints
from narrows.micro import parse_replicas
from narrows.plan import load_child, micro_plan, plan_children, positive_rate, topology
from narrows.ports import PortInUse, PortPlan

__all__ = ["ChildSpec", "Supervisor", "add_arguments", "run"]

#: Seconds each stop tier may take before SIGKILL, by ``ChildSpec.stop_tier``: the load
#: generator, then the services (whose flush is bounded by NARROWS_SHUTDOWN_TIMEOUT, 5 s)
#: and the dashboard, then the collector (which writes what it has queued).
STOP_TIMEOUT_S = {0: 3.0, 1: 8.0, 2: 8.0}
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0)
#: a replica that ran this long before dying restarts after the shortest pause again
STABLE_AFTER_S = 30.0
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
    parser.add_argument(
        "--load-rate",
        type=positive_rate,
        metavar="RPS",
        help="with --load: requests per second, Poisson arrivals (default 5)",
    )
    parser.add_argument(
        "--topology",
        choices=["single", "micro"],
        default=None,
        help="single: one demo process (default); micro: gateway, orders and catalog services",
    )
    parser.add_argument(
        "--replicas",
        type=parse_replicas,
        metavar="catalog=N[,orders=M]",
        help="micro topology with N catalog (and M orders) replicas; implies --topology micro",
    )
    parser.add_argument(
        "--no-dashboard",
        action="store_true",
        help="do not start the dashboard (e.g. for `narrows diagnose` or tests)",
    )
    demo = parser.add_argument_group("demo service (passed to `narrows demo`)")
    demo.add_argument("--shards", type=int, help="number of shards (default 4)")
    demo.add_argument("--cache", help="memory (default), none, or a redis:// URL")
    demo.add_argument(
        "--seed-items", type=int, help="items created when a shard is first made (default 10000)"
    )
    demo.add_argument("--pool-size", type=int, help="connections per shard (default 4)")
    demo.add_argument(
        "--db-latency-ms",
        type=float,
        help="round trip of a remote database, added to every shard query (default 0)",
    )
    demo.add_argument(
        "--shard-dsn",
        action="append",
        metavar="DSN",
        help="PostgreSQL shards: a DSN template with {i}, or once per shard",
    )
    demo.add_argument(
        "--orders-shard-dsn",
        action="append",
        metavar="DSN",
        help="micro: the orders service's PostgreSQL shards (default: the --shard-dsn "
        "template with orders_ before {i})",
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
class _Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    ready: bool = False
    started_at: float = 0.0
    restarts: int = 0
    restart_at: float | None = None
    held_down: bool = False


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
        #: called after a replica was restarted (endpoints.json lists pids)
        self.on_restart: Callable[[], None] | None = None

    def start(self, spec: ChildSpec) -> None:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self._log_dir / f"{spec.name}.log"
        log_file = log_path.open("wb")
        proc = _spawn(spec, log_file)
        self._children.append(_Child(spec, proc, log_path, log_file, started_at=time.monotonic()))

    def processes(self) -> list[dict[str, Any]]:
        """The service processes for endpoints.json (current pids)."""
        return [
            {
                "name": c.spec.name,
                "service": c.spec.service,
                "instance": c.spec.instance,
                "url": c.spec.url,
                "pid": c.proc.pid,
            }
            for c in self._children
            if c.spec.service
        ]

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

    def check_alive(self, *, restarting: bool = False) -> None:
        """Raise ChildFailed naming the first child that exited, with its last log lines.

        With ``restarting`` (after start-up), replicas are supervised instead: see
        ``_supervise_replica``.
        """
        for child in self._children:
            if restarting and child.spec.restart:
                self._supervise_replica(child)
                continue
            code = child.proc.poll()
            if code is not None:
                raise ChildFailed(
                    f"{child.spec.name} exited with code {code}; last lines of "
                    f"{child.log_path}:\n{_tail(child.log_path)}"
                )

    def _supervise_replica(self, child: _Child) -> None:
        """Keep a replica running — or stopped while its down marker exists."""
        now = time.monotonic()
        marker = child.spec.down_marker
        down = marker is not None and marker.exists()
        alive = child.proc.poll() is None
        if down:
            if alive:
                self._out(f"  {child.spec.name:<10} marked down: stopping it")
                _signal_group(child.proc, signal.SIGKILL)
                child.proc.wait(timeout=5)
            child.held_down, child.restart_at = True, None
            return
        if alive:
            return
        if child.held_down:
            child.held_down = False
            child.restart_at = now
        if child.restart_at is None:
            if now - child.started_at >= STABLE_AFTER_S:
                child.restarts = 0
            pause = RESTART_BACKOFF_S[min(child.restarts, len(RESTART_BACKOFF_S) - 1)]
            child.restart_at = now + pause
            self._out(
                f"  {child.spec.name:<10} exited with code {child.proc.returncode}; "
                f"restarting in {pause:.0f}s"
            )
        if now >= child.restart_at:
            child.proc = _spawn(child.spec, child.log_file)
            child.started_at, child.restart_at = now, None
            child.restarts += 1
            self._out(f"  {child.spec.name:<10} restarted (pid {child.proc.pid})")
            if self.on_restart is not None:
                self.on_restart()

    def request_stop(self, *_: object) -> None:
        self._stopping = True

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop_all(self) -> None:
        """Stop the children tier by tier (SIGTERM to each process group, SIGKILL what
        outlives its tier's bound), so senders finish before their receivers go."""
        for tier in sorted({c.spec.stop_tier for c in self._children}):
            group = [c for c in reversed(self._children) if c.spec.stop_tier == tier]
            for child in group:
                _signal_group(child.proc, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S.get(tier, 8.0)
            for child in group:
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


def _spawn(spec: ChildSpec, log_file: IO[bytes]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env}
    return subprocess.Popen(
        spec.argv,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _healthy(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def run(args: argparse.Namespace) -> int:
    """Start everything, print the URLs, supervise until Ctrl-C/SIGTERM or a child dies."""
    out = _printer()
    data_dir: Path = args.data_dir.resolve()
    if getattr(args, "topology", None) == "single" and getattr(args, "replicas", None):
        print("narrows up: --replicas needs --topology micro", file=sys.stderr)
        return 2
    requested = {
        "demo": args.demo_port,
        "otlp": args.otlp_port,
        "zipkin": args.zipkin_port,
        "query": args.query_port,
        "dashboard": args.dashboard_port,
    }
    if args.no_dashboard and args.dashboard_port is None:
        requested["dashboard"] = 0  # not started: any port passes the check, none is bound
    try:
        ports = PortPlan.resolve(requested, free=args.ports == "free", host="127.0.0.1")
        micro = micro_plan(args, ports, data_dir) if topology(args) == "micro" else None
        children = plan_children(args, ports, data_dir, micro)
    except (PortInUse, ValueError) as exc:
        print(f"narrows up: {exc}", file=sys.stderr)
        return 2
    data_dir.mkdir(parents=True, exist_ok=True)
    if micro is not None:  # markers of an earlier run mean nothing now
        shutil.rmtree(micro.control_dir, ignore_errors=True)
    sup = Supervisor(data_dir / "logs", out)
    previous = {s: signal.signal(s, sup.request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    endpoints_path = data_dir / ENDPOINTS_FILE
    try:
        out(f"narrows up: starting in {data_dir} (logs in {data_dir / 'logs'})")
        for spec in children:
            sup.start(spec)
        sup.wait_ready(args.startup_timeout)
        if args.load:
            sup.start(load_child(ports, args.load_rate))
            sup.wait_ready(args.startup_timeout)

        def write_endpoints() -> None:
            _endpoints(
                ports, topology(args), sup.processes(), dashboard=not args.no_dashboard
            ).write(data_dir)

        write_endpoints()
        sup.on_restart = write_endpoints
        endpoints = Endpoints.read(data_dir)
        out("all services ready")
        if micro is None:
            out(f"  demo       {endpoints.demo}")
        else:
            out(f"  gateway    {endpoints.demo}  (the public API)")
            for p in endpoints.processes:
                if p["name"] != "gateway":
                    out(f"  {p['name']:<10} {p['url']}")
        out(
            f"  collector  OTLP {endpoints.otlp}  Zipkin {endpoints.zipkin}  "
            f"query {endpoints.query}"
        )
        out(f"  dashboard  {endpoints.dashboard or 'not started (--no-dashboard)'}")
        out("press Ctrl-C to stop")
        while not sup.stopping:
            sup.check_alive(restarting=True)
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


def _endpoints(
    ports: PortPlan, topology: str, processes: list[dict[str, Any]], *, dashboard: bool = True
) -> Endpoints:
    """The URLs to print and write; ``dashboard`` is empty when it was not started."""
    host = "http://127.0.0.1"
    return Endpoints(
        demo=f"{host}:{ports.demo}",
        otlp=f"{host}:{ports.otlp}",
        zipkin=f"{host}:{ports.zipkin}",
        query=f"{host}:{ports.query}",
        dashboard=f"{host}:{ports.dashboard}" if dashboard else "",
        pid=os.getpid(),
        topology=topology,
        processes=tuple(processes),
    )


def _printer() -> Callable[[str], None]:
    def out(line: str) -> None:
        print(line, flush=True)

    return out
