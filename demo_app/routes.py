"""The demo's public endpoints: single, multi-key, scatter-gather and multi-step shapes."""

from __future__ import annotations

import hashlib
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from demo_app.checkout import checkout, get_order
from demo_app.exceptions import InvalidInput, NotFound
from demo_app.faults import Faults
from demo_app.models import MAX_ITEM_ID, Item, ItemIn, Order, OrderIn
from demo_app.service import DemoService

__all__ = [
    "MAX_MULTIGET",
    "ROUTES",
    "IdsQuery",
    "ItemIdPath",
    "SearchLimit",
    "SearchText",
    "check_search_text",
    "handler_work",
    "items_router",
    "orders_router",
    "parse_ids",
    "router",
]

MAX_MULTIGET = 100


def _service(request: Request) -> DemoService:
    service: DemoService = request.app.state.demo
    return service


def _handler_work(request: Request) -> None:
    """Called first in every API handler, on the event loop.

    A plain call rather than a dependency: FastAPI's operation spans name dependencies.
    """
    handler_work(_service(request).faults, request)


def handler_work(faults: Faults, request: Request) -> None:
    """The handler's own CPU work (the gateway of the micro topology calls it too)."""
    route = request.scope.get("route")
    ms = faults.cpu_burn_ms(getattr(route, "path", ""))
    if ms <= 0:
        return
    # cpu_burn simulates CPU-heavy work done synchronously in a handler (serialising a big
    # document, a regex, a password hash) — it blocks the event loop, so every request
    # waiting on this worker slows down, not only this route's.
    deadline = time.perf_counter() + ms / 1000.0
    digest = b"narrows"
    while time.perf_counter() < deadline:
        digest = hashlib.sha256(digest).digest()


Service = Annotated[DemoService, Depends(_service)]
ItemIdPath = Annotated[int, Path(ge=1, le=MAX_ITEM_ID, description="item id")]
#: The query parameters of the multi-get and of search, the same at the gateway.
IdsQuery = Annotated[list[str], Query(description="comma-separated item ids")]
SearchText = Annotated[str, Query(min_length=1, max_length=64)]
SearchLimit = Annotated[int, Query(ge=1, le=100)]
#: The item store's routes (the micro topology's catalog serves these alone) …
items_router = APIRouter()
#: … and checkout's (the micro topology's orders service has its own, over HTTP).
orders_router = APIRouter()


@items_router.get("/items/{item_id}")
async def get_item(item_id: ItemIdPath, service: Service, request: Request) -> Item:
    _handler_work(request)
    item = await service.catalog.get(item_id)
    if item is None:
        raise NotFound(f"item {item_id} not found")
    return item


@items_router.put("/items/{item_id}")
async def put_item(item_id: ItemIdPath, body: ItemIn, service: Service, request: Request) -> Item:
    _handler_work(request)
    return await service.catalog.put(Item(id=item_id, **body.model_dump()))


def check_search_text(q: str) -> None:
    """Search text must have something to search for and nothing unprintable (InvalidInput,
    400, otherwise)."""
    if not q.strip() or not q.isprintable():
        raise InvalidInput("q: give printable search text")


def parse_ids(raw: list[str]) -> list[int]:
    """``ids=1,2,3`` (repeating ``ids=`` works too): distinct, in order, 1 … MAX_MULTIGET."""
    ids: list[int] = []
    for token in (t.strip() for part in raw for t in part.split(",")):
        if not token:
            continue
        if not token.isdigit() or len(token) > 10 or not 1 <= int(token) <= MAX_ITEM_ID:
            raise InvalidInput(f"ids: {token[:20]!r} is not an item id (1 … {MAX_ITEM_ID})")
        if int(token) not in ids:
            ids.append(int(token))
        if len(ids) > MAX_MULTIGET:
            raise InvalidInput(f"ids: at most {MAX_MULTIGET} ids per request")
    if not ids:
        raise InvalidInput("ids: give at least one item id, e.g. ids=1,2,3")
    return ids


@items_router.get("/items")
async def get_items(
    service: Service,
    request: Request,
    ids: IdsQuery,
) -> dict[str, Any]:
    _handler_work(request)
    wanted = parse_ids(ids)
    found = await service.catalog.get_many(wanted)
    return {
        "items": [found[i] for i in wanted if i in found],
        "missing": [i for i in wanted if i not in found],
    }


@items_router.get("/search")
async def search(
    service: Service,
    request: Request,
    q: SearchText,
    limit: SearchLimit = 20,
) -> dict[str, Any]:
    _handler_work(request)
    check_search_text(q)
    hits = await service.catalog.search(q.strip(), limit)
    return {"q": q, "results": [{"score": score, **item.model_dump()} for score, item in hits]}


@orders_router.post("/orders", status_code=201)
async def post_order(body: OrderIn, service: Service, request: Request) -> Order:
    _handler_work(request)
    return await checkout(service.catalog, body)


@orders_router.get("/orders/{order_id}")
async def read_order(
    order_id: Annotated[int, Path(ge=1, le=2**53)], service: Service, request: Request
) -> Order:
    _handler_work(request)
    return await get_order(service.catalog, order_id)


#: Both, for the single-process demo (the same route objects: no prefix, nothing to rebuild).
router = APIRouter()
router.routes.extend([*items_router.routes, *orders_router.routes])

ROUTES: tuple[str, ...] = tuple(getattr(r, "path", "") for r in router.routes)
