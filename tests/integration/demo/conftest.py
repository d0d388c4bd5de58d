"""The demo on both backends — SQLite + in-process cache, PostgreSQL + Redis — for one suite.

``demo`` serves the app from a thread (uvicorn, free port) per test module and backend, so
the whole endpoint suite runs against each backend without restarting per test.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from demo_app.backends import PostgresBackend, SqliteBackend
from demo_app.settings import DemoSettings
from demo_app.shards import shard_for
from tests.conftest import require_program
from tests.support.demo import DemoServer, SpanCapture, demo_server, span_capture
from tests.support.servers import PostgresServer, redis_server

BACKENDS = ["sqlite-memory", "postgres-redis"]
SEED_ITEMS = 300


@pytest.fixture(autouse=True, scope="session")
def _no_span_export() -> None:
    """Before any app is instrumented: spans stay in memory, never go to a port 4318."""
    span_capture()


@pytest.fixture
def spans() -> SpanCapture:
    capture = span_capture()
    capture.clear()
    return capture


def pg_template(server: PostgresServer) -> str:
    """A fresh set of shard databases (the demo creates them on first start)."""
    return server.dsn(f"t{uuid.uuid4().hex[:12]}_shard_{{i}}")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_program("redis-server")
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


class SettingsFactory:
    """Settings for one backend; each call gets its own data dir / databases."""

    def __init__(
        self,
        backend: str,
        tmp: pytest.TempPathFactory,
        postgres: PostgresServer | None = None,
        redis_url: str | None = None,
    ) -> None:
        self.backend = backend
        self._tmp = tmp
        self._postgres = postgres
        self._redis_url = redis_url

    def __call__(self, **overrides: Any) -> DemoSettings:
        base: dict[str, Any] = {
            "data_dir": self._tmp.mktemp("data"),
            "seed_items": SEED_ITEMS,
            "shards": 4,
            "pool_size": 4,
        }
        if self._postgres is not None and self._redis_url is not None:
            base["shard_dsns"] = (pg_template(self._postgres),)
            base["cache"] = self._redis_url
        return DemoSettings(**{**base, **overrides})


@pytest.fixture(scope="module", params=BACKENDS)
def make_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> SettingsFactory:
    if request.param == "sqlite-memory":
        return SettingsFactory(request.param, tmp_path_factory)
    return SettingsFactory(
        request.param,
        tmp_path_factory,
        request.getfixturevalue("postgres"),
        request.getfixturevalue("redis_url"),
    )


@pytest.fixture(scope="module")
def demo(make_settings: SettingsFactory) -> Iterator[DemoServer]:
    with demo_server(make_settings()) as server:
        yield server


@pytest.fixture
def clean_faults(demo: DemoServer) -> Iterator[DemoServer]:
    """The module's server, with every fault cleared after the test."""
    try:
        yield demo
    finally:
        demo.service.faults.clear_all()


def keys_on(shard: int, count: int, shards: int = 4, start: int = 1) -> list[int]:
    out, key = [], start
    while len(out) < count:
        if shard_for(key, shards) == shard:
            out.append(key)
        key += 1
    return out


def shard_sql(
    server: DemoServer, shard: int, sql: str, params: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    """Read a shard's database directly (not through the service) to check what is stored."""
    backend = server.service.shards[shard].backend
    if isinstance(backend, SqliteBackend):
        with sqlite3.connect(backend.path) as conn:
            return list(conn.execute(sql, params).fetchall())
    assert isinstance(backend, PostgresBackend)
    import psycopg

    with psycopg.connect(backend.dsn, autocommit=True) as conn:
        cur = conn.execute(sql.replace("?", "%s"), params)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []


def stock(server: DemoServer, item_id: int) -> int:
    rows = shard_sql(
        server, shard_for(item_id, 4), "SELECT stock FROM items WHERE id = ?", (item_id,)
    )
    return int(rows[0][0])


def order_count(server: DemoServer) -> int:
    return sum(int(shard_sql(server, s, "SELECT count(*) FROM orders")[0][0]) for s in range(4))
