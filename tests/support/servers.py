"""Private Redis, PostgreSQL and Prometheus servers on free ports in temp dirs.

The machines are shared: we never assume a standard port is ours and never touch a server
we did not start. PostgreSQL refuses to run as root, so as root it runs as ``postgres``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from narrows.ports import free_port
from tests.support.procs import OwnedProcess, wait_for

__all__ = [
    "PostgresServer",
    "PrometheusServer",
    "RedisServer",
    "find_program",
    "postgres_server",
    "prometheus_server",
    "redis_server",
]

_PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def find_program(name: str) -> str | None:
    """The program's path, also looking in PostgreSQL's versioned bin dirs."""
    found = shutil.which(name)
    if found:
        return found
    for d in _PG_BIN_DIRS:
        if (d / name).exists():
            return str(d / name)
    return None


@dataclass
class RedisServer:
    port: int
    proc: OwnedProcess
    argv: list[str] = field(default_factory=list)
    workdir: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """SIGKILL, the way a crashed node dies (no persistence: it comes back empty)."""
        self.proc.kill()

    def restart(self) -> None:
        """Start it again on the same port; returns once it answers PING."""
        if self.proc.alive():
            raise RuntimeError("redis is still running")
        self.proc = OwnedProcess.start("redis", self.argv, self.workdir)
        _wait_redis(self.port, self.proc)


def _wait_redis(port: int, proc: OwnedProcess) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        wait_for(lambda: bool(client.ping()), 15, "redis to answer PING", proc, interval=0.05)
    finally:
        client.close()


@contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    exe = find_program("redis-server")
    if exe is None:
        raise FileNotFoundError("redis-server")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        exe,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--daemonize",
        "no",
    ]
    server = RedisServer(port, OwnedProcess.start("redis", argv, workdir), argv, workdir)
    try:
        _wait_redis(port, server.proc)
        yield server
    finally:
        server.proc.stop()


@dataclass
class PostgresServer:
    port: int
    datadir: Path
    proc: OwnedProcess
    argv: list[str] = field(default_factory=list)
    user: str | None = None

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends at once (a crashed or OOM-killed server).

        Returns once the postmaster is gone: under ``runuser`` it is a grandchild, reaped by
        init a moment later, and until then its ``postmaster.pid`` would stop a restart.
        """
        lock = self.datadir / "postmaster.pid"
        try:
            pid = int(lock.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = 0
        self.proc.kill()
        if pid:
            wait_for(lambda: not Path(f"/proc/{pid}").exists(), 15, f"postmaster {pid} to go")

    def restart(self) -> None:
        """Start it again on the same port and data directory (crash recovery runs);
        returns once it accepts connections."""
        if self.proc.alive():
            raise RuntimeError("postgres is still running")
        self.proc = OwnedProcess.start("postgres", self.argv, self.datadir.parent, user=self.user)
        _wait_postgres(self.port, self.proc)


def _wait_postgres(port: int, proc: OwnedProcess) -> None:
    import psycopg

    def ready() -> bool:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2):
            return True

    wait_for(ready, 60, "postgres to accept connections", proc, interval=0.1)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    initdb, postgres = find_program("initdb"), find_program("postgres")
    if initdb is None or postgres is None:
        raise FileNotFoundError("initdb/postgres")
    # Not under pytest's tmp_path: as root that is mode 700 and `postgres` could not enter it.
    root = Path(tempfile.mkdtemp(prefix="narrows-pg-"))
    datadir, sockdir = root / "data", root / "sock"
    sockdir.mkdir()
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        shutil.chown(root, user)
        shutil.chown(sockdir, user)
        os.chmod(root, 0o755)
    cmd = [initdb, "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    port = free_port()
    argv = [
        postgres,
        "-D",
        str(datadir),
        "-p",
        str(port),
        "-k",
        str(sockdir),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
        "-c",
        "max_connections=200",
        "-c",
        "shared_buffers=32MB",
    ]
    server = PostgresServer(
        port, datadir, OwnedProcess.start("postgres", argv, root, user=user), argv, user
    )
    try:
        _wait_postgres(port, server.proc)
        yield server
    finally:
        server.proc.stop(timeout=20)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class PrometheusServer:
    port: int
    proc: OwnedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, promql: str) -> list[dict[str, object]]:
        resp = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        resp.raise_for_status()
        return list(resp.json()["data"]["result"])


@contextmanager
def prometheus_server(
    workdir: Path, targets: list[str], scrape_interval: str = "1s", extra_config: str = ""
) -> Iterator[PrometheusServer]:
    """Prometheus scraping ``targets`` (host:port) with exemplar storage on."""
    exe = find_program("prometheus")
    if exe is None:
        raise FileNotFoundError("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    target_list = ", ".join(f"'{t}'" for t in targets)
    config.write_text(
        "global:\n"
        f"  scrape_interval: {scrape_interval}\n"
        f"  evaluation_interval: {scrape_interval}\n"
        "scrape_configs:\n"
        "  - job_name: narrows\n"
        f"    static_configs:\n      - targets: [{target_list}]\n" + extra_config
    )
    port = free_port()
    proc = OwnedProcess.start(
        "prometheus",
        [
            exe,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--enable-feature=exemplar-storage",
            "--web.enable-lifecycle",
        ],
        workdir,
    )
    try:
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200,
            30,
            "prometheus to be ready",
            proc,
        )
        yield PrometheusServer(port, proc)
    finally:
        proc.stop()
