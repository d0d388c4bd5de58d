"""Stock reservations: the catalog's half of a checkout when orders live in another service.

The micro topology's orders service calls ``POST /stock/reserve`` before it writes an
order and ``POST /stock/release`` when that write fails (a saga with one compensation).
The rules are checkout.py's, minus the order row:

1. Read the items through the cache; 404/409 before anything is written.
2. One transaction per shard involved, opened in ascending shard order (no wait cycles,
   also between replicas sharing the shards), each decrementing with
   ``UPDATE … WHERE stock >= quantity`` (0 rows → 409, everything rolled back).
3. Commit in ascending order; a commit failing after an earlier shard committed gives the
   committed stock back and answers 503.
4. Invalidate the cached copies.

``release`` gives stock back, one transaction per shard; it is not idempotent, so callers
send it once (a failure is logged by the caller as a partial write to repair).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from demo_app.backends import Connection
from demo_app.catalog import Catalog
from demo_app.checkout import decrement, read_items
from demo_app.exceptions import ShardUnavailable
from demo_app.models import Item, OrderLine
from demo_app.shards import HeldConnection

__all__ = ["release", "reserve"]

_log = logging.getLogger(__name__)


async def reserve(catalog: Catalog, lines: Sequence[OrderLine]) -> dict[int, Item]:
    """Take the stock for ``lines`` (all or nothing); returns the items as read in step 1."""
    items = await read_items(catalog, lines)
    by_line = {line.id: line for line in lines}
    by_shard = catalog.shards.group(by_line)
    async with contextlib.AsyncExitStack() as stack:
        held: dict[int, HeldConnection] = {}
        for shard_id, ids in by_shard.items():  # ascending: see rule 2
            held[shard_id] = await stack.enter_async_context(catalog.shards[shard_id].hold())
            for item_id in sorted(ids):
                await decrement(held[shard_id], by_line[item_id])
        committed: list[int] = []
        for shard_id, tx in held.items():
            try:
                await tx.commit()
            except ShardUnavailable:
                if committed:
                    done = [by_line[i] for s in committed for i in by_shard[s]]
                    try:
                        await release(catalog, done)
                    except ShardUnavailable:
                        _log.error("stock reservation left partial writes on shards %s", committed)
                raise
            committed.append(shard_id)
    await catalog.invalidate(by_line)
    return items


async def release(catalog: Catalog, lines: Sequence[OrderLine]) -> None:
    """Give the stock of ``lines`` back; raises ShardUnavailable naming a shard that failed."""
    by_line = {line.id: line for line in lines}
    failed: ShardUnavailable | None = None
    for shard_id, ids in catalog.shards.group(by_line).items():
        try:
            async with catalog.shards[shard_id].hold() as tx:
                for item_id in sorted(ids):
                    qty = by_line[item_id].quantity

                    async def give_back(conn: Connection, i: int = item_id, q: int = qty) -> None:
                        await conn.execute(
                            "UPDATE items SET stock = stock + ? WHERE id = ?", (q, i)
                        )

                    await tx.run("UPDATE", "items", give_back)
                await tx.commit()
        except ShardUnavailable as exc:
            failed = failed or exc
    await catalog.invalidate(by_line)
    if failed is not None:
        raise failed
