"""The catalog service: the demo's sharded, cached item store, one replica per process.

Replicas share the shard files (or PostgreSQL databases) and, with ``--cache redis://…``,
the cache; with the default in-process cache each replica has its own (a write on one
replica leaves the others' copies until their TTL — the usual trade-off of a local cache).

Routes: the demo's item routes (``/items/{id}``, ``/items``, ``/search``) and the stock
reservations the orders service calls (``POST /stock/reserve``, ``POST /stock/release``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request

from demo_app import routes
from demo_app.exceptions import Unavailable
from demo_app.faults import ALL_FAULTS
from demo_app.micro.apps import instrument_service, ops_app, upstream_errors_as_json
from demo_app.micro.settings import ServiceSettings
from demo_app.models import StockIn
from demo_app.service import DemoService
from demo_app.settings import DemoSettings
from demo_app.stock import release, reserve

__all__ = ["create_catalog_app"]


def _service(request: Request) -> DemoService:
    service: DemoService = request.app.state.demo
    return service


async def _replica_conditions(request: Request) -> None:
    """Runs before every catalog handler (after routing, so spans keep their route)."""
    faults = _service(request).faults
    # slow_replica simulates a replica on a degraded host (a noisy neighbour, a throttled
    # CPU, a failing disk): everything this one process serves takes longer, whatever the
    # shard — the other replicas are fine.
    delay = faults.replica_delay_s()
    if delay > 0:
        await asyncio.sleep(delay)
    # retry_storm's trigger: brief hiccups of something every replica depends on (a DNS
    # blip, a failover, a stop-the-world pause): for 200 ms at a time every request fails
    # fast. Harmless alone; multiplied by a client that retries at once, a storm.
    if faults.in_hiccup(time.time()):
        raise Unavailable("temporarily unavailable, try again")


Service = Annotated[DemoService, Depends(_service)]
stock_router = APIRouter()


@stock_router.post("/stock/reserve")
async def reserve_stock(body: StockIn, service: Service) -> dict[str, Any]:
    """All or nothing; 404 for an unknown item, 409 when there is not enough stock."""
    items = await reserve(service.catalog, body.items)
    return {"items": [{"id": i.id, "price": i.price} for i in items.values()]}


@stock_router.post("/stock/release")
async def release_stock(body: StockIn, service: Service) -> dict[str, Any]:
    await release(service.catalog, body.items)
    return {"released": len(body.items)}


def create_catalog_app(settings: DemoSettings, service_settings: ServiceSettings) -> FastAPI:
    """One catalog replica (no I/O until the lifespan starts)."""
    me = service_settings
    api_routes = (*routes.ROUTES, "/stock/reserve", "/stock/release")
    service = DemoService.build(
        settings, api_routes, specs=ALL_FAULTS, replicas=me.replicas, instance=me.instance
    )
    boot = secrets.token_hex(8)

    api = FastAPI(title="Narrows catalog")
    api.state.demo = service
    conditions = [Depends(_replica_conditions)]
    api.include_router(routes.items_router, dependencies=conditions)
    api.include_router(stock_router, dependencies=conditions)
    upstream_errors_as_json(api)
    instrument_service(api, me)

    async def health() -> tuple[int, dict[str, Any]]:
        return 200, {
            "status": "ok",
            "service": me.name,
            "instance": me.instance_id,
            "boot": boot,
            "shards": len(service.shards),
            "backend": settings.backend,
            "cache": "redis" if settings.cache.startswith(("redis", "unix")) else settings.cache,
        }

    return ops_app(api, state=service, opened=service.open, closed=service.close, health=health)
