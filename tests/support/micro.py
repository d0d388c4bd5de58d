"""The micro topology's three services in one process, for tests: gateway → orders → catalog
replicas over an httpx transport that routes by host to each app (real apps, real SQLite
shards, no sockets)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from demo_app.micro.catalog_app import create_catalog_app
from demo_app.micro.gateway_app import GatewayService, create_gateway_app
from demo_app.micro.orders_app import create_orders_app
from demo_app.micro.settings import ServiceSettings
from demo_app.service import DemoService
from demo_app.settings import DemoSettings

__all__ = ["CATALOG", "ORDERS", "Micro", "Router", "micro"]

CATALOG = (("catalog-0", "http://catalog-0.test"), ("catalog-1", "http://catalog-1.test"))
ORDERS = (("orders-0", "http://orders-0.test"),)


@dataclass
class Router(httpx.AsyncBaseTransport):
    """Hosts → in-process apps; a host in ``down`` refuses connections."""

    apps: dict[str, FastAPI]
    down: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.calls.append(f"{host} {request.method} {request.url.path}")
        if host in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return await httpx.ASGITransport(app=self.apps[host]).handle_async_request(request)


@dataclass
class Micro:
    gateway: httpx.AsyncClient
    service: GatewayService
    router: Router
    catalogs: list[DemoService]
    control: Path
    start_catalog: Callable[[int], Awaitable[None]]


def _catalog(store: DemoSettings, index: int) -> FastAPI:
    return create_catalog_app(
        store, ServiceSettings("catalog", instance=index, replicas=len(CATALOG))
    )


@contextlib.asynccontextmanager
async def micro(tmp_path: Path, **gateway: Any) -> AsyncIterator[Micro]:
    store = DemoSettings(data_dir=tmp_path / "data", seed_items=400, cache="none")
    router = Router({})
    control = tmp_path / "run"
    async with contextlib.AsyncExitStack() as stack:

        async def start(app: FastAPI, host: str) -> None:
            await stack.enter_async_context(app.router.lifespan_context(app))
            router.apps[host] = app

        async def start_catalog(index: int) -> None:
            await start(_catalog(store, index), f"catalog-{index}.test")

        for i in range(len(CATALOG)):
            await start_catalog(i)
        await start(
            create_orders_app(store, ServiceSettings("orders", catalog=CATALOG), transport=router),
            "orders-0.test",
        )
        me = ServiceSettings(
            "gateway", catalog=CATALOG, orders=ORDERS, control_dir=control, **gateway
        )
        app = create_gateway_app(me, transport=router)
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
        )
        catalogs = [router.apps[f"catalog-{i}.test"].state.demo for i in range(len(CATALOG))]
        yield Micro(client, app.state.demo, router, catalogs, control, start_catalog)
