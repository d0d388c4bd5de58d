"""A known workload for the real demo: requests sent one by one, each with its own trace id,
and what the demo must have done for them derived from the requests and their answers.

Nothing here reads the demo's telemetry: the counts are the ground truth the telemetry is
checked against (cache hits and misses by a model of the demo's cache-aside reads, errors
from the status codes, the shard of every key from the demo's own hash).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import httpx

from demo_app.shards import shard_for

__all__ = ["DemoWorkload", "Driver", "keys_on"]


def keys_on(shard: int, shards: int, count: int, start: int) -> list[int]:
    """``count`` item ids from ``start`` upwards that the demo stores on ``shard``."""
    out: list[int] = []
    key = start
    while len(out) < count:
        if shard_for(key, shards) == shard:
            out.append(key)
        key += 1
    return out


@dataclass
class DemoWorkload:
    """What was sent and what the demo answered, by span name (``{method} {route}``)."""

    by_route: dict[str, list[str]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    cache_hits: int = 0
    cache_misses: int = 0

    @property
    def trace_ids(self) -> list[str]:
        return [t for ids in self.by_route.values() for t in ids]

    def errors_by_route(self) -> dict[str, int]:
        return {
            route: sum(self.statuses[t] >= 500 for t in ids) for route, ids in self.by_route.items()
        }


class Driver:
    """Sends requests to the demo with a fresh ``traceparent`` each and records them.

    ``cached`` models the in-memory cache-aside: a read of a key not in it is a miss that
    fills it when the item exists; an order reads its items the same way and then drops
    them from the cache (the demo invalidates what it wrote).
    """

    def __init__(self, client: httpx.Client, work: DemoWorkload | None = None) -> None:
        self.client = client
        self.work = work or DemoWorkload()
        self.cached: set[int] = set()

    def _send(self, name: str, method: str, path: str, **kwargs: object) -> httpx.Response:
        trace_id = secrets.token_hex(16)
        headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
        resp = self.client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        self.work.by_route.setdefault(name, []).append(trace_id)
        self.work.statuses[trace_id] = resp.status_code
        if resp.status_code >= 500:
            self.work.failed.append(trace_id)
        return resp

    def _lookup(self, key: int) -> None:
        if key in self.cached:
            self.work.cache_hits += 1
        else:
            self.work.cache_misses += 1

    def get(self, key: int) -> int:
        self._lookup(key)
        resp = self._send("GET /items/{item_id}", "GET", f"/items/{key}")
        if resp.status_code == 200:
            self.cached.add(key)
        return resp.status_code

    def search(self, q: str) -> int:
        return self._send("GET /search", "GET", "/search", params={"q": q}).status_code

    def order(self, key: int) -> int:
        """One line of one item; answers the order id (0 when it failed)."""
        self._lookup(key)
        body = {"items": [{"id": key, "quantity": 1}], "customer": "contract"}
        resp = self._send("POST /orders", "POST", "/orders", json=body)
        self.cached.discard(key)
        return int(resp.json()["id"]) if resp.status_code == 201 else 0

    def read_order(self, order_id: int) -> int:
        return self._send("GET /orders/{order_id}", "GET", f"/orders/{order_id}").status_code
