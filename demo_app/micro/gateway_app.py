"""The gateway: the demo's public API, served by calling the catalog and orders services.

It validates every request itself (the same models and limits as the single demo), so a
bad request never costs an upstream call; fans a multi-get out to the catalog, one call
per shard touched, in parallel, and aggregates the answers; relays everything else.

A tenant comes in as header ``X-Tenant`` (or already as baggage ``app.tenant``, e.g. from
`narrows load`); the gateway puts it in the baggage of every upstream call and on its
own SERVER span, and every service downstream copies it onto its SERVER spans.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.responses import Response
from opentelemetry import baggage, context, trace

from demo_app.catalog import fan_out
from demo_app.faults import ALL_FAULTS, Faults, log_change, parse_fault_arg
from demo_app.micro.apps import (
    answer_json,
    instrument_service,
    ops_app,
    relay,
    upstream_errors_as_json,
)
from demo_app.micro.balancer import Endpoint
from demo_app.micro.fault_sync import FaultSync
from demo_app.micro.retry import RetryPolicy
from demo_app.micro.settings import ServiceSettings
from demo_app.micro.upstream import Upstream, UpstreamConfig
from demo_app.models import ItemIn, OrderIn
from demo_app.routes import (
    IdsQuery,
    ItemIdPath,
    SearchLimit,
    SearchText,
    check_search_text,
    handler_work,
    parse_ids,
)
from demo_app.shards import shard_for

__all__ = ["CATALOG", "ORDERS", "GatewayService", "TenantMiddleware", "create_gateway_app"]

CATALOG = "narrows-catalog"
ORDERS = "narrows-orders"
TENANT_BAGGAGE = "app.tenant"
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PUBLIC_ROUTES = ("/items/{item_id}", "/items", "/search", "/orders", "/orders/{order_id}")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TenantMiddleware:
    """``X-Tenant`` → baggage ``app.tenant`` (for every upstream call) and the span attribute.

    Inside the instrumented app, so the SERVER span is current; an invalid value is a 422.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = next((v for k, v in scope["headers"] if k == b"x-tenant"), None)
        if raw is None:
            await self.app(scope, receive, send)
            return
        tenant = raw.decode("latin-1").strip()
        if not _TENANT.match(tenant):
            body = b'{"error": "X-Tenant: 1-64 letters, digits, dots, dashes or underscores"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 422,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        trace.get_current_span().set_attribute(TENANT_BAGGAGE, tenant)
        token = context.attach(baggage.set_baggage(TENANT_BAGGAGE, tenant))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)


@dataclass
class GatewayService:
    settings: ServiceSettings
    faults: Faults
    catalog: Upstream
    orders: Upstream
    sync: FaultSync
    shard_count: int

    @classmethod
    def build(
        cls, me: ServiceSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> GatewayService:
        specs = dict(ALL_FAULTS)
        if me.control_dir is None:
            # Stopping a replica takes a supervisor (`narrows up`); without one it is not offered.
            specs.pop("replica_down")
        faults = Faults(
            shards=me.shards,
            routes=PUBLIC_ROUTES,
            seed=me.fault_seed,
            item_count=me.seed_items,
            specs=specs,
            replicas=len(me.catalog),
        )
        for text in me.faults:
            name, raw = parse_fault_arg(text)
            log_change(name, faults.params(name), faults.set(name, raw))
        retry = RetryPolicy(max_retries=me.retries)
        holder: list[GatewayService] = []

        async def catalog_healthy(endpoint: Endpoint, health: Mapping[str, Any]) -> None:
            if holder:
                await holder[0].catalog_healthy(endpoint, health)

        catalog = Upstream(
            UpstreamConfig(
                CATALOG,
                me.catalog,
                strategy=me.strategy,
                attempt_timeout_s=me.timeout_s,
                deadline_s=2 * me.timeout_s,
                retry=retry,
            ),
            faults=faults,
            on_healthy=catalog_healthy,
            transport=transport,
        )
        # A checkout waits for the orders service's own catalog calls (2 × timeout at most).
        orders = Upstream(
            UpstreamConfig(
                ORDERS,
                me.orders,
                strategy=me.strategy,
                attempt_timeout_s=3 * me.timeout_s,
                deadline_s=3 * me.timeout_s,
                retry=retry,
            ),
            faults=faults,
            transport=transport,
        )
        sync = FaultSync(faults, catalog, me.control_dir)
        service = cls(me, faults, catalog, orders, sync, me.shards)
        holder.append(service)
        return service

    async def open(self) -> None:
        await self.catalog.start()
        await self.orders.start()
        self.sync.write_markers()

    async def close(self) -> None:
        await self.orders.close()
        await self.catalog.close()

    async def catalog_healthy(self, endpoint: Endpoint, health: Mapping[str, Any]) -> None:
        shards = health.get("shards")
        if isinstance(shards, int) and 1 <= shards <= 64:
            self.shard_count = shards
        await self.sync.on_healthy(endpoint, health)

    def by_shard(self, ids: list[int]) -> list[list[int]]:
        """Ids grouped by the catalog shard that owns them (one catalog call each)."""
        groups: dict[int, list[int]] = {}
        for item_id in ids:
            groups.setdefault(shard_for(item_id, self.shard_count), []).append(item_id)
        return [groups[s] for s in sorted(groups)]

    async def catalog_json(self, path: str, template: str, params: Mapping[str, str]) -> Any:
        response = await self.catalog.request("GET", path, template=template, params=params)
        return answer_json(response, CATALOG)


def _service(request: Request) -> GatewayService:
    service: GatewayService = request.app.state.demo
    return service


Service = Annotated[GatewayService, Depends(_service)]
router = APIRouter()


@router.get("/items/{item_id}")
async def get_item(item_id: ItemIdPath, service: Service, request: Request) -> Response:
    handler_work(service.faults, request)
    path = f"/items/{item_id}"
    return relay(await service.catalog.request("GET", path, template="/items/{item_id}"), CATALOG)


@router.put("/items/{item_id}")
async def put_item(
    item_id: ItemIdPath, body: ItemIn, service: Service, request: Request
) -> Response:
    handler_work(service.faults, request)
    answer = await service.catalog.request(
        "PUT", f"/items/{item_id}", template="/items/{item_id}", json=body.model_dump()
    )
    return relay(answer, CATALOG)


@router.get("/items")
async def get_items(
    service: Service,
    request: Request,
    ids: IdsQuery,
) -> dict[str, Any]:
    """Fan-out: one catalog call per shard touched, in parallel; answers merged in order."""
    handler_work(service.faults, request)
    wanted = parse_ids(ids)
    calls = [
        (
            lambda chunk=chunk: service.catalog_json(
                "/items", "/items", {"ids": ",".join(map(str, chunk))}
            )
        )
        for chunk in service.by_shard(wanted)
    ]
    found: dict[int, Any] = {}
    for part in await fan_out(calls, sequential=False):
        for item in part.get("items", []):
            found[int(item["id"])] = item
    return {
        "items": [found[i] for i in wanted if i in found],
        "missing": [i for i in wanted if i not in found],
    }


@router.get("/search")
async def search(
    service: Service,
    request: Request,
    q: SearchText,
    limit: SearchLimit = 20,
) -> Response:
    handler_work(service.faults, request)
    check_search_text(q)
    answer = await service.catalog.request(
        "GET", "/search", template="/search", params={"q": q, "limit": str(limit)}
    )
    return relay(answer, CATALOG)


@router.post("/orders", status_code=201)
async def post_order(body: OrderIn, service: Service, request: Request) -> Response:
    handler_work(service.faults, request)
    answer = await service.orders.request(
        "POST", "/orders", template="/orders", json=body.model_dump()
    )
    return relay(answer, ORDERS)


@router.get("/orders/{order_id}")
async def read_order(
    order_id: Annotated[int, Path(ge=1, le=2**53)], service: Service, request: Request
) -> Response:
    handler_work(service.faults, request)
    answer = await service.orders.request(
        "GET", f"/orders/{order_id}", template="/orders/{order_id}"
    )
    return relay(answer, ORDERS)


def create_gateway_app(
    me: ServiceSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The gateway (no I/O until the lifespan starts); ``transport`` replaces the network
    for its upstream calls (tests run the services in one process)."""
    service = GatewayService.build(me, transport)
    api = FastAPI(title="Narrows gateway")
    api.state.demo = service
    api.include_router(router)
    api.add_middleware(TenantMiddleware)
    upstream_errors_as_json(api)
    instrument_service(api, me)

    async def health() -> tuple[int, dict[str, Any]]:
        ready = service.catalog.ready and service.orders.ready
        return (200 if ready else 503), {
            "status": "ok" if ready else "starting",
            "service": me.name,
            "topology": "micro",
            "shards": service.shard_count,
            "upstreams": {
                up.service: {e.instance: e.healthy for e in up.balancer.endpoints}
                for up in (service.catalog, service.orders)
            },
        }

    ops = ops_app(api, state=service, opened=service.open, closed=service.close, health=health)
    ops.state.fault_hook = service.sync.changed
    return ops
