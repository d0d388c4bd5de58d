"""POST /orders never leaves partial writes (the rule in demo_app/checkout.py), on both backends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from demo_app.settings import DemoSettings
from tests.integration.demo.conftest import keys_on, order_count, pg_template, shard_sql, stock
from tests.support.demo import DemoServer, demo_server
from tests.support.servers import PostgresServer

pytestmark = pytest.mark.integration


def _order(demo: DemoServer, *lines: tuple[int, int]) -> httpx.Response:
    body = {"items": [{"id": i, "quantity": q} for i, q in lines]}
    return httpx.post(f"{demo.url}/orders", json=body, timeout=15)


def test_insufficient_stock_on_a_later_shard_writes_nothing(clean_faults: DemoServer) -> None:
    demo = clean_faults
    first, last = keys_on(0, 1, start=200)[0], keys_on(3, 1, start=200)[0]
    # The cache still believes there is stock; only the shard's conditional update knows.
    assert httpx.get(f"{demo.url}/items/{last}", timeout=10).json()["stock"] == 100
    shard_sql(demo, 3, "UPDATE items SET stock = 1 WHERE id = ?", (last,))
    orders = order_count(demo)
    resp = _order(demo, (first, 5), (last, 2))
    assert resp.status_code == 409
    assert f"item {last}" in resp.json()["error"]
    assert stock(demo, first) == 100  # the decrement on shard 0 was rolled back
    assert stock(demo, last) == 1
    assert order_count(demo) == orders


def test_a_failing_shard_mid_checkout_writes_nothing_anywhere(clean_faults: DemoServer) -> None:
    demo = clean_faults
    first, last = keys_on(1, 1, start=210)[0], keys_on(2, 1, start=210)[0]
    before = stock(demo, first), stock(demo, last)
    orders = order_count(demo)
    demo.service.faults.set("failing_shard", {"shard": 2})
    resp = _order(demo, (first, 1), (last, 1))
    assert resp.status_code == 503
    assert resp.json()["error"].startswith("shard 2 unavailable")
    assert (stock(demo, first), stock(demo, last)) == before
    assert order_count(demo) == orders
    demo.service.faults.clear("failing_shard")
    assert _order(demo, (first, 1), (last, 1)).status_code == 201
    assert (stock(demo, first), stock(demo, last)) == (before[0] - 1, before[1] - 1)
    assert order_count(demo) == orders + 1


def test_concurrent_checkouts_never_sell_more_than_the_stock(clean_faults: DemoServer) -> None:
    demo = clean_faults
    item = keys_on(1, 1, start=220)[0]
    other = keys_on(3, 1, start=220)[0]
    body = {"name": "last few", "price": 3.0, "stock": 3, "text": ""}
    assert httpx.put(f"{demo.url}/items/{item}", json=body, timeout=10).status_code == 200
    orders = order_count(demo)

    async def buy() -> int:
        async with httpx.AsyncClient(base_url=demo.url, timeout=20) as client:
            answers = await asyncio.gather(
                *(
                    client.post("/orders", json={"items": [{"id": item}, {"id": other}]})
                    for _ in range(8)
                )
            )
        return sum(1 for a in answers if a.status_code == 201)

    statuses = asyncio.run(buy())
    assert statuses == 3
    assert stock(demo, item) == 0
    assert order_count(demo) == orders + 3
    assert stock(demo, other) == 100 - 3


def test_a_commit_that_fails_after_another_shard_committed_is_compensated(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """PostgreSQL only (SQLite cannot fail a COMMIT on demand): a deferred constraint
    trigger makes shard 3's COMMIT itself fail after shard 0 has committed."""
    settings = DemoSettings(
        data_dir=tmp_path, seed_items=300, shard_dsns=(pg_template(postgres),), cache="none"
    )
    with demo_server(settings) as demo:
        first, last = keys_on(0, 1, start=230)[0], keys_on(3, 1, start=230)[0]
        assert stock(demo, first) == 100  # the shards exist and are seeded
        shard_sql(
            demo,
            3,
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'refused at commit'; END $$ LANGUAGE plpgsql",
        )
        shard_sql(
            demo,
            3,
            "CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER UPDATE ON items "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()",
        )
        resp = _order(demo, (first, 4), (last, 1))
        assert resp.status_code == 503
        assert "refused at commit" in resp.json()["error"]
        assert stock(demo, first) == 100  # committed on shard 0, then given back
        assert stock(demo, last) == 100
        assert order_count(demo) == 0
