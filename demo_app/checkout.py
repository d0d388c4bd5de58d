"""POST /orders: a multi-step checkout across shards that never leaves partial writes.

The rule (tested in tests/integration/demo/test_checkout.py):

1. Read the items through the cache (in parallel) and refuse early (404/409) when an item
   is missing or its cached stock is too low. Nothing is written yet.
2. Open one transaction on every shard involved (the items' shards and the order's shard),
   **in ascending shard order** — so two checkouts can never wait on each other in a cycle,
   neither for pool connections nor for row locks.
3. In those transactions, decrement stock with ``UPDATE … WHERE stock >= quantity`` (the
   authoritative check: 0 rows means someone bought it first → 409) and insert the order.
4. Commit only when every step on every shard succeeded. Any failure before this point —
   insufficient stock, a shard error, a timeout, a cancelled request — rolls back every
   shard's transaction, so nothing at all is written.
5. Commits go in ascending shard order. If a commit fails after an earlier shard committed
   (a shard dying inside that window of one round-trip), the committed shards are
   compensated — stock is given back and the order row deleted — and the request answers
   503. Should a compensation fail too, the service logs "checkout left partial writes"
   with the order id and the shards, for repair.
6. Then the cached copies of the items are invalidated.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from collections.abc import Sequence

from demo_app.backends import Connection
from demo_app.catalog import Catalog, fan_out
from demo_app.exceptions import InsufficientStock, NotFound, ShardUnavailable
from demo_app.models import Item, Order, OrderIn, OrderLine
from demo_app.shards import HeldConnection, Shards, shard_for

__all__ = ["checkout", "decrement", "get_order", "new_order_id", "read_items", "read_order"]

_log = logging.getLogger(__name__)


def new_order_id() -> int:
    """Random, below 2**53 so JavaScript clients read it exactly."""
    return secrets.randbits(52) + 1


async def read_items(catalog: Catalog, lines: Sequence[OrderLine]) -> dict[int, Item]:
    """Step 1: the items through the cache, in parallel; 404/409 before anything is written."""
    calls = [(lambda i=line.id: catalog.get(i)) for line in lines]
    items = await fan_out(calls, sequential=False)
    found: dict[int, Item] = {}
    for line, item in zip(lines, items, strict=True):
        if item is None:
            raise NotFound(f"item {line.id} not found")
        if item.stock < line.quantity:
            raise InsufficientStock(line.id, line.quantity, item.stock)
        found[line.id] = item
    return found


async def decrement(held: HeldConnection, line: OrderLine) -> None:
    async def update(conn: Connection) -> int:
        result = await conn.execute(
            "UPDATE items SET stock = stock - ? WHERE id = ? AND stock >= ?",
            (line.quantity, line.id, line.quantity),
        )
        return result.rowcount

    if await held.run("UPDATE", "items", update) != 1:
        raise InsufficientStock(line.id, line.quantity)


async def _insert_order(held: HeldConnection, order: Order) -> None:
    lines = json.dumps([line.model_dump() for line in order.lines])

    async def insert(conn: Connection) -> None:
        await conn.execute(
            "INSERT INTO orders (id, customer, total, lines, created_at) VALUES (?, ?, ?, ?, ?)",
            (order.id, order.customer, order.total, lines, order.created_at),
        )

    await held.run("INSERT", "orders", insert)


async def checkout(catalog: Catalog, request: OrderIn) -> Order:
    shards = catalog.shards
    items = await read_items(catalog, request.items)
    order = Order(
        id=new_order_id(),
        customer=request.customer,
        total=round(sum(items[line.id].price * line.quantity for line in request.items), 2),
        lines=sorted(request.items, key=lambda line: line.id),
        created_at=time.time(),
    )
    order_shard = shard_for(order.id, len(shards))
    by_shard = shards.group(line.id for line in order.lines)
    involved = sorted({*by_shard, order_shard})
    lines = {line.id: line for line in order.lines}

    async with contextlib.AsyncExitStack() as stack:
        held: dict[int, HeldConnection] = {}
        for shard_id in involved:  # ascending: see rule 2
            held[shard_id] = await stack.enter_async_context(shards[shard_id].hold())
            for item_id in sorted(by_shard.get(shard_id, [])):
                await decrement(held[shard_id], lines[item_id])
            if shard_id == order_shard:
                await _insert_order(held[shard_id], order)
        await _commit_all(catalog, order, [held[s] for s in involved], by_shard, order_shard)
    await catalog.invalidate(lines)
    return order


async def _commit_all(
    catalog: Catalog,
    order: Order,
    held: list[HeldConnection],
    by_shard: dict[int, list[int]],
    order_shard: int,
) -> None:
    committed: list[int] = []
    for tx in held:
        try:
            await tx.commit()
        except ShardUnavailable:
            if committed:
                await _compensate(catalog, order, committed, by_shard, order_shard)
            raise
        committed.append(tx.store.id)


async def _compensate(
    catalog: Catalog,
    order: Order,
    committed: list[int],
    by_shard: dict[int, list[int]],
    order_shard: int,
) -> None:
    """Undo what the committed shards wrote (rule 5)."""
    lines = {line.id: line for line in order.lines}
    failed: list[int] = []
    for shard_id in committed:
        try:
            async with catalog.shards[shard_id].hold() as tx:
                for item_id in sorted(by_shard.get(shard_id, [])):
                    qty = lines[item_id].quantity

                    async def give_back(conn: Connection, i: int = item_id, q: int = qty) -> None:
                        await conn.execute(
                            "UPDATE items SET stock = stock + ? WHERE id = ?", (q, i)
                        )

                    await tx.run("UPDATE", "items", give_back)
                if shard_id == order_shard:

                    async def delete(conn: Connection) -> None:
                        await conn.execute("DELETE FROM orders WHERE id = ?", (order.id,))

                    await tx.run("DELETE", "orders", delete)
                await tx.commit()
        except ShardUnavailable:
            failed.append(shard_id)
    if failed:
        _log.error(
            "checkout left partial writes: order %d on shards %s could not be compensated",
            order.id,
            failed,
        )


async def get_order(catalog: Catalog, order_id: int) -> Order:
    return await read_order(catalog.shards, order_id)


async def read_order(shards: Shards, order_id: int) -> Order:
    """The order from the shard that owns its id; NotFound (404) when there is none."""

    async def select(conn: Connection) -> Order | None:
        result = await conn.execute(
            "SELECT id, customer, total, lines, created_at FROM orders WHERE id = ?", (order_id,)
        )
        if not result.rows:
            return None
        oid, customer, total, lines, created_at = result.rows[0]
        return Order(
            id=int(oid),
            customer=str(customer),
            total=float(total),
            lines=[OrderLine(**line) for line in json.loads(str(lines))],
            created_at=float(created_at),
        )

    order = await shards.for_key(order_id).run("SELECT", "orders", select)
    if order is None:
        raise NotFound(f"order {order_id} not found")
    return order
