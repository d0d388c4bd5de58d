"""When a dependency dies, only what needs it fails: Redis down → shard reads; a PostgreSQL
shard down → 503 for its keys only, and recovery without a restart."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from demo_app.settings import DemoSettings
from narrows.ports import free_port
from tests.integration.demo.conftest import keys_on, pg_template
from tests.support.demo import SpanCapture, demo_server
from tests.support.servers import PostgresServer, RedisServer

pytestmark = pytest.mark.integration


def test_a_redis_outage_degrades_to_shard_reads_never_500(
    redis: RedisServer, tmp_path: Path, spans: SpanCapture
) -> None:
    settings = DemoSettings(data_dir=tmp_path, seed_items=200, cache=redis.url)
    with demo_server(settings) as demo:
        for _ in range(2):
            assert httpx.get(f"{demo.url}/items/3", timeout=10).status_code == 200
        hits = [s.attributes["app.cache.hit"] for s in spans.named("cache.get")]
        assert hits == [False, True]

        redis.proc.stop()
        spans.clear()
        started = time.monotonic()
        for item_id in (3, 4, 5, 3):
            resp = httpx.get(f"{demo.url}/items/{item_id}", timeout=10)
            assert resp.status_code == 200
            assert resp.json()["id"] == item_id
        assert time.monotonic() - started < 2.0  # failing fast, not waiting on timeouts
        body = {"name": "still writable", "price": 2.0, "stock": 3}
        assert httpx.put(f"{demo.url}/items/3", json=body, timeout=10).status_code == 200
        lookups = spans.named("cache.get")
        assert len(lookups) == 4
        assert all(not s.status.is_ok for s in lookups)  # visible as cache errors
        assert len(spans.named("SELECT items")) == 4


def _set_connections(postgres: PostgresServer, dbname: str, allowed: bool) -> None:
    import psycopg

    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (dbname,),
            )


def test_a_dead_postgres_shard_fails_only_its_own_keys_and_recovers(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    settings = DemoSettings(
        data_dir=tmp_path, seed_items=200, shard_dsns=(pg_template(postgres),), cache="none"
    )
    with demo_server(settings) as demo:
        dead = demo.service.shards[2].backend.namespace
        on_dead, elsewhere = keys_on(2, 3), [keys_on(s, 1)[0] for s in (0, 1, 3)]
        for key in on_dead + elsewhere:  # every shard has pooled connections now
            assert httpx.get(f"{demo.url}/items/{key}", timeout=10).status_code == 200

        _set_connections(postgres, dead, allowed=False)
        try:
            for key in on_dead:
                resp = httpx.get(f"{demo.url}/items/{key}", timeout=10)
                assert resp.status_code == 503
                assert resp.json()["error"].startswith("shard 2 unavailable")
            for key in elsewhere:
                assert httpx.get(f"{demo.url}/items/{key}", timeout=10).status_code == 200
            ids = ",".join(map(str, elsewhere))
            assert httpx.get(f"{demo.url}/items?ids={ids}", timeout=10).status_code == 200
            assert httpx.get(f"{demo.url}/search?q=river", timeout=10).status_code == 503
        finally:
            _set_connections(postgres, dead, allowed=True)
        for key in on_dead:  # the pool reconnects; no restart needed
            assert httpx.get(f"{demo.url}/items/{key}", timeout=10).status_code == 200


def test_the_demo_starts_with_a_shard_down_and_serves_the_others(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    template = pg_template(postgres)
    dsns = [template.replace("{i}", str(i)) for i in range(4)]
    dsns[1] = f"postgresql://postgres@127.0.0.1:{free_port()}/nobody_home"
    settings = DemoSettings(data_dir=tmp_path, seed_items=200, shard_dsns=tuple(dsns), cache="none")
    with demo_server(settings) as demo:
        resp = httpx.get(f"{demo.url}/items/{keys_on(1, 1)[0]}", timeout=10)
        assert resp.status_code == 503
        assert "shard 1 unavailable" in resp.json()["error"]
        for shard in (0, 2, 3):
            key = keys_on(shard, 1)[0]
            assert httpx.get(f"{demo.url}/items/{key}", timeout=10).status_code == 200


def test_an_exhausted_pool_answers_503_after_the_pool_timeout(tmp_path: Path) -> None:
    settings = DemoSettings(
        data_dir=tmp_path, seed_items=200, cache="none", pool_size=1, pool_timeout_s=0.2
    )
    with demo_server(settings) as demo:
        demo.service.faults.set("slow_shard", {"shard": 0, "delay_ms": 600})
        import asyncio

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=demo.url, timeout=10) as client:
                keys = keys_on(0, 3)
                return list(await asyncio.gather(*(client.get(f"/items/{k}") for k in keys)))

        answers = asyncio.run(burst())
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 503, 503]
        busy = next(a for a in answers if a.status_code == 503)
        assert "no connection free within 0.2s" in busy.json()["error"]
        assert busy.headers["retry-after"] == "1"
