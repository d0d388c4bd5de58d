"""The three services in one process (tests/support/micro.py): the public API through
catalog and orders, validation at the gateway, baggage, fault switches, ejection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from demo_app.service import DemoService
from tests.support.demo import SpanCapture
from tests.support.micro import Micro, micro


def _run(tmp_path: Path, body: Callable[[Micro], Awaitable[None]], **gateway: Any) -> None:
    async def main() -> None:
        async with micro(tmp_path, **gateway) as m:
            await body(m)

    asyncio.run(main())


def test_the_public_api_is_served_through_catalog_and_orders(tmp_path: Path) -> None:
    async def body(m: Micro) -> None:
        item = (await m.gateway.get("/items/42")).json()
        assert item["id"] == 42
        assert item["stock"] == 100
        many = (await m.gateway.get("/items", params={"ids": "9,3,99999,5"})).json()
        assert [i["id"] for i in many["items"]] == [9, 3, 5]  # the order asked for
        assert many["missing"] == [99999]
        found = (await m.gateway.get("/search", params={"q": "river", "limit": 3})).json()
        assert 0 < len(found["results"]) <= 3
        put = await m.gateway.put("/items/7", json={"name": "n", "price": 2.5, "stock": 9})
        assert put.status_code == 200
        order = await m.gateway.post(
            "/orders", json={"items": [{"id": 7, "quantity": 4}], "customer": "c"}
        )
        assert order.status_code == 201, order.text
        assert order.json()["total"] == 10.0
        assert (await m.gateway.get("/items/7")).json()["stock"] == 5
        again = await m.gateway.get(f"/orders/{order.json()['id']}")
        assert again.json()["lines"] == [{"id": 7, "quantity": 4}]
        calls = " ".join(m.router.calls)
        assert "orders-0.test POST /orders" in calls
        assert "POST /stock/reserve" in calls

    _run(tmp_path, body)


def test_a_multi_get_fans_out_one_catalog_call_per_shard_touched(tmp_path: Path) -> None:
    async def body(m: Micro) -> None:
        ids = list(range(1, 41))
        shards = {tuple(g) for g in m.service.by_shard(ids)}
        assert len(shards) == 4
        m.router.calls.clear()
        answer = (await m.gateway.get("/items", params={"ids": ",".join(map(str, ids))})).json()
        assert [i["id"] for i in answer["items"]] == ids
        assert sum(" GET /items" in c for c in m.router.calls) == 4

    _run(tmp_path, body)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/items/0", {}, 422),
        ("GET", "/items", {"params": {"ids": "1,x"}}, 422),
        ("GET", "/search", {"params": {"q": "  "}}, 422),
        ("PUT", "/items/3", {"json": {"name": "", "price": 1, "stock": 1}}, 422),
        ("POST", "/orders", {"json": {"items": [{"id": 1}, {"id": 1}]}}, 422),
        (
            "POST",
            "/orders",
            {"content": b"{", "headers": {"content-type": "application/json"}},
            422,
        ),
        ("GET", "/items/3", {"headers": {"x-tenant": "no spaces"}}, 422),
    ],
)
def test_bad_requests_are_refused_at_the_gateway_without_an_upstream_call(
    tmp_path: Path, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    async def body(m: Micro) -> None:
        m.router.calls.clear()
        answer = await m.gateway.request(method, path, **kwargs)
        assert answer.status_code == status
        assert answer.json()["error"]
        assert not [c for c in m.router.calls if "/healthz" not in c and "/admin" not in c]

    _run(tmp_path, body)


def test_checkout_refusals_from_the_catalog_keep_their_status(tmp_path: Path) -> None:
    async def body(m: Micro) -> None:
        unknown = await m.gateway.post("/orders", json={"items": [{"id": 9999}]})
        assert unknown.status_code == 404
        assert "item 9999 not found" in unknown.json()["error"]
        greedy = await m.gateway.post("/orders", json={"items": [{"id": 3, "quantity": 999}]})
        assert greedy.status_code == 409
        assert (await m.gateway.get("/items/3")).json()["stock"] == 100  # nothing taken

    _run(tmp_path, body)


def test_a_tenant_travels_as_baggage_onto_every_services_server_span(
    tmp_path: Path, spans: SpanCapture
) -> None:
    async def body(m: Micro) -> None:
        spans.clear()
        answer = await m.gateway.post(
            "/orders", json={"items": [{"id": 11}]}, headers={"x-tenant": "acme-eu"}
        )
        assert answer.status_code == 201

    _run(tmp_path, body)
    servers = [s for s in spans.spans() if s.kind is SpanKind.SERVER]
    routes = {str((s.attributes or {}).get("http.route")) for s in servers}
    assert {"/orders", "/stock/reserve"} <= routes
    assert len(servers) >= 3  # gateway, orders, catalog
    assert {(s.attributes or {}).get("app.tenant") for s in servers} == {"acme-eu"}
    assert len({s.context.trace_id for s in servers}) == 1


def test_fault_switches_reach_the_replicas_and_a_restarted_replica_catches_up(
    tmp_path: Path,
) -> None:
    async def body(m: Micro) -> None:
        put = await m.gateway.put("/admin/faults/slow_replica", json={"instance": 1})
        assert put.status_code == 200
        burn = await m.gateway.put("/admin/faults/cpu_burn", json={"ms": 1})
        assert burn.status_code == 200
        for replica in m.catalogs:
            assert replica.faults.params("slow_replica") is not None
            assert replica.faults.params("cpu_burn") is None  # the gateway's own
        assert m.catalogs[1].faults.replica_delay_s() == pytest.approx(0.2)
        assert m.catalogs[0].faults.replica_delay_s() == 0
        # catalog-1 restarts: a new process with nothing switched on, a new boot id.
        await m.start_catalog(1)
        fresh: DemoService = m.router.apps["catalog-1.test"].state.demo
        assert fresh.faults.params("slow_replica") is None
        await m.service.catalog.check(m.service.catalog.balancer.endpoints[1])
        assert fresh.faults.params("slow_replica") is not None
        cleared = await m.gateway.delete("/admin/faults/slow_replica")
        assert cleared.status_code == 200
        assert fresh.faults.params("slow_replica") is None
        listing = (await m.gateway.get("/admin/faults")).json()
        names = [f["name"] for f in listing["faults"]]
        assert {"slow_replica", "replica_down", "retry_storm", "slow_shard"} <= set(names)

    _run(tmp_path, body)


def test_replica_down_leaves_the_marker_the_supervisor_watches(tmp_path: Path) -> None:
    async def body(m: Micro) -> None:
        marker = m.control / "down" / "catalog-0"
        assert (await m.gateway.put("/admin/faults/replica_down", json={"instance": 0})).is_success
        assert marker.exists()
        bad = await m.gateway.put("/admin/faults/replica_down", json={"instance": 2})
        assert bad.status_code == 422
        assert "out of range 0 … 1" in bad.json()["error"]
        assert (await m.gateway.delete("/admin/faults/replica_down")).is_success
        assert not marker.exists()

    _run(tmp_path, body)


def test_a_refused_catalog_replica_is_ejected_and_clients_never_see_it(tmp_path: Path) -> None:
    async def body(m: Micro) -> None:
        catalog = m.service.catalog
        for endpoint in catalog.balancer.endpoints:
            assert await catalog.check(endpoint)  # both admitted
        m.router.down.add("catalog-0.test")
        answers = [await m.gateway.get(f"/items/{i}") for i in range(1, 21)]
        assert {a.status_code for a in answers} == {200}
        dead, alive = catalog.balancer.endpoints
        assert not dead.healthy
        assert alive.healthy
        m.router.calls.clear()
        for i in range(5):
            assert (await m.gateway.get(f"/items/{i + 1}")).status_code == 200
        assert not [c for c in m.router.calls if c.startswith("catalog-0.test")]

    _run(tmp_path, body)
