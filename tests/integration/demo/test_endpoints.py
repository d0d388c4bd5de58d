"""Every endpoint, the same suite on SQLite + in-process cache and PostgreSQL + Redis."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from demo_app.schema import make_item
from demo_app.shards import shard_for
from tests.integration.demo.conftest import SEED_ITEMS, keys_on, stock
from tests.support.demo import DemoServer

pytestmark = pytest.mark.integration


def _get(demo: DemoServer, path: str) -> httpx.Response:
    return httpx.get(demo.url + path, timeout=10)


def test_healthz_reports_the_layout(demo: DemoServer) -> None:
    doc = _get(demo, "/healthz").json()
    assert doc["status"] == "ok"
    assert doc["shards"] == 4
    assert doc["backend"] in ("sqlite", "postgresql")


def test_get_item_returns_the_seeded_item_from_its_shard(demo: DemoServer) -> None:
    for item_id in (1, 2, 3, SEED_ITEMS):
        resp = _get(demo, f"/items/{item_id}")
        assert resp.status_code == 200
        assert resp.json() == make_item(item_id).model_dump()


def test_a_missing_item_is_404_with_a_reason(demo: DemoServer) -> None:
    resp = _get(demo, f"/items/{SEED_ITEMS + 1}")
    assert resp.status_code == 404
    assert resp.json() == {"error": f"item {SEED_ITEMS + 1} not found"}


def test_put_replaces_an_item_and_the_next_read_sees_it_not_the_cached_copy(
    demo: DemoServer,
) -> None:
    item_id = 40
    assert _get(demo, f"/items/{item_id}").status_code == 200  # now cached
    body = {"name": "renamed lantern", "price": 12.5, "stock": 7, "text": "fresh"}
    resp = httpx.put(f"{demo.url}/items/{item_id}", json=body, timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"id": item_id, **body}
    assert _get(demo, f"/items/{item_id}").json() == {"id": item_id, **body}
    assert stock(demo, item_id) == 7


def test_put_creates_a_new_item_on_the_shard_that_owns_its_id(demo: DemoServer) -> None:
    item_id = 1_000_003
    body = {"name": "new", "price": 1.0, "stock": 1}
    assert httpx.put(f"{demo.url}/items/{item_id}", json=body, timeout=10).status_code == 200
    assert _get(demo, f"/items/{item_id}").json()["text"] == ""
    assert stock(demo, item_id) == 1


def test_multiget_returns_found_items_in_request_order_and_lists_missing(
    demo: DemoServer,
) -> None:
    ids = [keys_on(s, 1, start=100)[0] for s in (3, 0, 2, 1)] + [SEED_ITEMS + 5]
    resp = _get(demo, "/items?ids=" + ",".join(map(str, ids)))
    assert resp.status_code == 200
    doc = resp.json()
    assert [i["id"] for i in doc["items"]] == ids[:4]
    assert doc["missing"] == [SEED_ITEMS + 5]
    assert len({shard_for(i, 4) for i in ids[:4]}) == 4


def test_multiget_accepts_repeated_ids_parameters_and_duplicates(demo: DemoServer) -> None:
    resp = _get(demo, "/items?ids=5&ids=6,5")
    assert [i["id"] for i in resp.json()["items"]] == [5, 6]


def test_search_gathers_ranked_matches_from_every_shard(demo: DemoServer) -> None:
    resp = _get(demo, "/search?q=harbour&limit=50")
    assert resp.status_code == 200
    results = resp.json()["results"]
    assert 0 < len(results) <= 50
    assert all("harbour" in (r["name"] + " " + r["text"]) for r in results)
    keys = [(-r["score"], r["id"]) for r in results]
    assert keys == sorted(keys)
    assert len({shard_for(r["id"], 4) for r in results}) == 4
    expected = sorted(
        (i for i in range(1, SEED_ITEMS + 1) if "harbour" in make_item(i).text),
    )[:50]
    if len(results) == 50:
        assert [r["id"] for r in results] == expected


def test_search_treats_like_wildcards_literally(demo: DemoServer) -> None:
    assert _get(demo, "/search?q=%25").json()["results"] == []
    assert _get(demo, "/search?q=_").json()["results"] == []


def test_search_ranks_name_matches_above_text_matches(demo: DemoServer) -> None:
    item_id = 1_000_011
    body = {"name": "quayside orchard", "price": 1.0, "stock": 1, "text": "x"}
    httpx.put(f"{demo.url}/items/{item_id}", json=body, timeout=10)
    results = _get(demo, "/search?q=orchard&limit=3").json()["results"]
    assert results[0]["id"] == item_id
    assert results[0]["score"] == 2


def test_checkout_writes_the_order_and_takes_the_stock(demo: DemoServer) -> None:
    a, b = keys_on(0, 1, start=150)[0], keys_on(3, 1, start=150)[0]
    before = stock(demo, a), stock(demo, b)
    body = {"items": [{"id": a, "quantity": 2}, {"id": b, "quantity": 1}], "customer": "ann"}
    resp = httpx.post(f"{demo.url}/orders", json=body, timeout=10)
    assert resp.status_code == 201, resp.text
    order = resp.json()
    expected_total = round(make_item(a).price * 2 + make_item(b).price, 2)
    assert order["total"] == pytest.approx(expected_total)
    assert (stock(demo, a), stock(demo, b)) == (before[0] - 2, before[1] - 1)
    assert _get(demo, f"/orders/{order['id']}").json() == order
    assert _get(demo, f"/items/{a}").json()["stock"] == before[0] - 2  # cache invalidated


BAD_INPUT: list[tuple[str, str, Any, int, str]] = [
    ("GET", "/items/0", None, 422, "item_id"),
    ("GET", "/items/-1", None, 422, "item_id"),
    ("GET", "/items/abc", None, 422, "item_id"),
    ("GET", "/items/1.5", None, 422, "item_id"),
    ("GET", "/items/99999999999999999999999", None, 422, "item_id"),
    ("PUT", "/items/1", {}, 422, "name"),
    ("PUT", "/items/1", {"name": "", "price": 1, "stock": 1}, 422, "name"),
    ("PUT", "/items/1", {"name": "x" * 201, "price": 1, "stock": 1}, 422, "name"),
    ("PUT", "/items/1", {"name": "a", "price": -1, "stock": 1}, 422, "price"),
    ("PUT", "/items/1", {"name": "a", "price": "cheap", "stock": 1}, 422, "price"),
    ("PUT", "/items/1", {"name": "a", "price": 1, "stock": 1.5}, 422, "stock"),
    ("PUT", "/items/1", {"name": "a", "price": 1, "stock": -1}, 422, "stock"),
    ("PUT", "/items/1", {"name": "a", "price": 1, "stock": 1, "colour": "red"}, 422, "colour"),
    ("PUT", "/items/1", [1, 2], 422, "body"),
    ("PUT", "/items/1", "not json", 422, "JSON"),
    ("PUT", "/items/0", {"name": "a", "price": 1, "stock": 1}, 422, "item_id"),
    ("GET", "/items", None, 422, "ids"),
    ("GET", "/items?ids=", None, 422, "ids"),
    ("GET", "/items?ids=abc", None, 422, "ids"),
    ("GET", "/items?ids=1,,x", None, 422, "ids"),
    ("GET", "/items?ids=0", None, 422, "ids"),
    ("GET", "/items?ids=99999999999", None, 422, "ids"),
    ("GET", "/items?ids=" + ",".join(map(str, range(1, 102))), None, 422, "at most 100"),
    ("GET", "/search", None, 422, "q"),
    ("GET", "/search?q=", None, 422, "q"),
    ("GET", "/search?q=%20%20", None, 422, "q"),
    ("GET", "/search?q=" + "x" * 65, None, 422, "q"),
    ("GET", "/search?q=a%00b", None, 422, "q"),
    ("GET", "/search?q=river&limit=0", None, 422, "limit"),
    ("GET", "/search?q=river&limit=1000", None, 422, "limit"),
    ("GET", "/search?q=river&limit=many", None, 422, "limit"),
    ("POST", "/orders", {}, 422, "items"),
    ("POST", "/orders", {"items": []}, 422, "items"),
    ("POST", "/orders", {"items": [{"id": i} for i in range(1, 22)]}, 422, "items"),
    ("POST", "/orders", {"items": [{"id": 1}, {"id": 1}]}, 422, "once"),
    ("POST", "/orders", {"items": [{"id": 1, "quantity": 0}]}, 422, "quantity"),
    ("POST", "/orders", {"items": [{"id": 1, "quantity": "2"}]}, 422, "quantity"),
    ("POST", "/orders", {"items": [{"id": 0}]}, 422, "id"),
    ("POST", "/orders", {"items": [{"id": 1}], "coupon": "x"}, 422, "coupon"),
    ("POST", "/orders", {"items": [{"id": SEED_ITEMS + 9}]}, 404, "not found"),
    ("POST", "/orders", {"items": [{"id": 2, "quantity": 1000}]}, 409, "in stock"),
    ("POST", "/orders", "{", 422, "JSON"),
    ("GET", "/orders/0", None, 422, "order_id"),
    ("GET", "/orders/abc", None, 422, "order_id"),
    ("GET", "/orders/12345", None, 404, "not found"),
    ("GET", "/no/such/route", None, 404, "Not Found"),
    ("DELETE", "/items/1", None, 405, "Method Not Allowed"),
    ("GET", "/admin/faults/nope", None, 404, "known faults"),
    ("PUT", "/admin/faults/nope", {}, 404, "known faults"),
    ("DELETE", "/admin/faults/nope", None, 404, "known faults"),
    ("PUT", "/admin/faults/slow_shard", {}, 422, "needs shard"),
    ("PUT", "/admin/faults/slow_shard", {"shard": 99}, 422, "out of range"),
    ("PUT", "/admin/faults/slow_shard", {"shard": 1, "delay_ms": "slow"}, 422, "delay_ms"),
    ("PUT", "/admin/faults/slow_shard", [1], 422, "JSON object"),
    ("PUT", "/admin/faults/slow_shard", "{", 422, "not valid JSON"),
    ("PUT", "/admin/faults/cpu_burn", {"route": "/nope"}, 422, "not a route"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "reason"),
    BAD_INPUT,
    ids=[f"{m} {p[:40]} {str(b)[:20]}" for m, p, b, _, _ in BAD_INPUT],
)
def test_bad_input_gets_a_4xx_with_a_json_reason(
    clean_faults: DemoServer, method: str, path: str, body: Any, status: int, reason: str
) -> None:
    kwargs: dict[str, Any] = {}
    if isinstance(body, str):
        kwargs["content"] = body.encode()
        kwargs["headers"] = {"content-type": "application/json"}
    elif body is not None:
        kwargs["json"] = body
    resp = httpx.request(method, clean_faults.url + path, timeout=10, **kwargs)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert isinstance(error, str)
    assert reason in error
    assert "Traceback" not in resp.text
    assert not any(f["active"] for f in _get(clean_faults, "/admin/faults").json()["faults"])


def test_fault_admin_round_trip(clean_faults: DemoServer) -> None:
    url = clean_faults.url + "/admin/faults"
    resp = httpx.put(f"{url}/slow_shard", json={"shard": 1, "delay_ms": 5}, timeout=10)
    assert resp.status_code == 200
    assert resp.json()["active"]
    listing = httpx.get(url, timeout=10).json()
    active = [f["name"] for f in listing["faults"] if f["active"]]
    assert active == ["slow_shard"]
    assert listing["shards"] == 4
    assert httpx.delete(f"{url}/slow_shard", timeout=10).json()["active"] is False
    httpx.put(f"{url}/cache_outage", timeout=10)
    httpx.put(f"{url}/sequential_fanout", json={}, timeout=10)
    cleared = httpx.delete(url, timeout=10).json()
    assert not any(f["active"] for f in cleared["faults"])
