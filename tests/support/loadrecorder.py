"""A small closed-loop load that records every request: when it started and ended, what it
touched and what it got — so a test can say which requests a fault was allowed to fail.

The demo's own load generator (`narrows load`) reports aggregates; a fault test needs
the individual answers around the moment a dependency died and came back.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass

import httpx

from demo_app.shards import shard_for

__all__ = ["Answer", "RecordedLoad"]


@dataclass(frozen=True)
class Answer:
    start: float  # wall clock (time.time()), so it lines up with span timestamps
    end: float
    kind: str  # get | multi | put
    shards: frozenset[int]
    status: int  # 0: no HTTP answer (a transport error)

    def during(self, begin: float, end: float) -> bool:
        return self.start >= begin and self.end <= end


class RecordedLoad:
    """``concurrency`` workers in their own thread and event loop; ``stop()`` → answers."""

    def __init__(
        self, url: str, *, items: int, shards: int = 4, concurrency: int = 8, seed: int = 1
    ) -> None:
        self._url, self._items, self._shards = url, items, shards
        self._concurrency, self._rng = concurrency, random.Random(seed)
        self._answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> RecordedLoad:
        self._thread.start()
        return self

    def answers(self) -> list[Answer]:
        return list(self._answers)

    def take(self) -> list[Answer]:
        """The answers so far, forgetting them (long runs analyse one window at a time)."""
        taken, self._answers = self._answers, []
        return taken

    def stop(self) -> list[Answer]:
        self._stop.set()
        self._thread.join(30)
        return self.answers()

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=self._concurrency)
        async with httpx.AsyncClient(base_url=self._url, timeout=15, limits=limits) as client:
            await asyncio.gather(*(self._worker(client) for _ in range(self._concurrency)))

    async def _worker(self, client: httpx.AsyncClient) -> None:
        rng = random.Random(self._rng.random())
        while not self._stop.is_set():
            roll, a, b = rng.random(), rng.randint(1, self._items), rng.randint(1, self._items)
            if roll < 0.15:
                kind, keys = "multi", (a, b)
                request = client.build_request("GET", f"/items?ids={a},{b}")
            elif roll < 0.20:
                kind, keys = "put", (a,)
                body = {"name": f"item {a}", "price": 1.5, "stock": 7}
                request = client.build_request("PUT", f"/items/{a}", json=body)
            else:
                kind, keys = "get", (a,)
                request = client.build_request("GET", f"/items/{a}")
            started = time.time()
            try:
                status = (await client.send(request)).status_code
            except httpx.HTTPError:
                status = 0
            shards = frozenset(shard_for(k, self._shards) for k in keys)
            self._answers.append(Answer(started, time.time(), kind, shards, status))
