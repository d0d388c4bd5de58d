"""The orders service: checkout over HTTP — reserve stock at the catalog, write the order to
its own shards, give the stock back if that write fails.

    POST /orders      → catalog POST /stock/reserve (not retried: it is not idempotent, bar
                        a connection that never opened) → INSERT on orders shard
                        → on failure: catalog POST /stock/release, then 503
    GET /orders/{id}  → SELECT on the orders shard that owns the id

Its shards are its own (``orders_<i>`` SQLite files, or the ``--shard-dsn`` databases it is
given): the catalog's shards never see an order row.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Path, Request

from demo_app.backends import Connection
from demo_app.checkout import new_order_id, read_order
from demo_app.exceptions import ShardUnavailable
from demo_app.faults import Faults
from demo_app.micro.apps import answer_json, instrument_service, ops_app, upstream_errors_as_json
from demo_app.micro.settings import ServiceSettings
from demo_app.micro.upstream import Upstream, UpstreamConfig
from demo_app.models import Order, OrderIn
from demo_app.settings import DemoSettings
from demo_app.shards import Shards, ShardStore

__all__ = ["OrdersService", "create_orders_app"]

_log = logging.getLogger(__name__)
CATALOG = "narrows-catalog"


@dataclass
class OrdersService:
    shards: Shards
    catalog: Upstream

    @classmethod
    def build(
        cls,
        settings: DemoSettings,
        me: ServiceSettings,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> OrdersService:
        faults = Faults(shards=settings.shards, routes=(), seed=settings.fault_seed)
        shards = Shards.from_settings(settings, faults, folder="orders", file_prefix="orders")
        catalog = Upstream(
            UpstreamConfig(
                CATALOG,
                me.catalog,
                strategy=me.strategy,
                attempt_timeout_s=me.timeout_s,
                deadline_s=2 * me.timeout_s,
            ),
            transport=transport,
        )
        return cls(shards, catalog)

    async def open(self) -> None:
        await self.shards.open()
        await self.catalog.start()

    async def close(self) -> None:
        await self.catalog.close()
        await self.shards.close()

    async def place(self, request: OrderIn) -> Order:
        lines = {"items": [line.model_dump() for line in request.items]}
        reserved = answer_json(
            await self.catalog.request(
                "POST", "/stock/reserve", template="/stock/reserve", json=lines
            ),
            CATALOG,
        )
        prices = {int(i["id"]): float(i["price"]) for i in reserved["items"]}
        order = Order(
            id=new_order_id(),
            customer=request.customer,
            total=round(sum(prices[line.id] * line.quantity for line in request.items), 2),
            lines=sorted(request.items, key=lambda line: line.id),
            created_at=time.time(),
        )
        try:
            await _insert(self.shards.for_key(order.id), order)
        except ShardUnavailable:
            await self._give_back(order, lines)
            raise
        return order

    async def _give_back(self, order: Order, lines: dict[str, Any]) -> None:
        """The compensation: stock reserved for an order that was not written goes back."""
        try:
            response = await self.catalog.request(
                "POST", "/stock/release", template="/stock/release", json=lines
            )
            answer_json(response, CATALOG)
        except Exception as exc:
            _log.error(
                "checkout left partial writes: stock for order %d reserved, order not written, "
                "release failed: %s",
                order.id,
                exc,
            )


async def _insert(store: ShardStore, order: Order) -> None:
    lines = [line.model_dump() for line in order.lines]

    async def insert(conn: Connection) -> None:
        await conn.execute(
            "INSERT INTO orders (id, customer, total, lines, created_at) VALUES (?, ?, ?, ?, ?)",
            (order.id, order.customer, order.total, json.dumps(lines), order.created_at),
        )

    await store.run("INSERT", "orders", insert)


def _service(request: Request) -> OrdersService:
    service: OrdersService = request.app.state.demo
    return service


Service = Annotated[OrdersService, Depends(_service)]
router = APIRouter()


@router.post("/orders", status_code=201)
async def post_order(body: OrderIn, service: Service) -> Order:
    return await service.place(body)


@router.get("/orders/{order_id}")
async def get_order(order_id: Annotated[int, Path(ge=1, le=2**53)], service: Service) -> Order:
    return await read_order(service.shards, order_id)


def create_orders_app(
    settings: DemoSettings,
    me: ServiceSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    service = OrdersService.build(settings, me, transport)
    api = FastAPI(title="Narrows orders")
    api.state.demo = service
    api.include_router(router)
    upstream_errors_as_json(api)
    instrument_service(api, me)

    async def health() -> tuple[int, dict[str, Any]]:
        return 200, {
            "status": "ok",
            "service": me.name,
            "instance": me.instance_id,
            "shards": len(service.shards),
            "catalog": {e.instance: e.healthy for e in service.catalog.balancer.endpoints},
        }

    return ops_app(
        api,
        state=service,
        opened=service.open,
        closed=service.close,
        health=health,
        admin=False,
    )
