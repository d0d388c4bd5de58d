"""The private servers the integration tests rely on start, answer and stay private."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.servers import PostgresServer, RedisServer

pytestmark = pytest.mark.integration


def test_private_redis_answers_on_its_own_port(redis: RedisServer) -> None:
    import redis as redis_lib

    client = redis_lib.Redis.from_url(redis.url)
    client.set("narrows-test", "1")
    assert client.get("narrows-test") == b"1"
    assert redis.port != 6379


def test_private_postgres_gives_each_test_its_own_database(postgres: PostgresServer) -> None:
    import psycopg

    dsn = postgres.create_database("narrows_fixture_check")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("narrows_fixture_check",)
    assert postgres.port != 5432


def test_private_prometheus_scrapes_a_target(prometheus_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prom = prometheus_factory([])
    # Prometheus always scrapes nothing here, but answers queries about itself.
    import httpx

    resp = httpx.get(f"{prom.url}/api/v1/status/buildinfo", timeout=5)
    assert resp.status_code == 200
    assert resp.json()["data"]["version"]
