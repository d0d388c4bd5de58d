"""What `narrows load` sends: the endpoint mix, the key distribution, each planned request.

A planned request knows the shards it will touch (the demo's own routing function), so the
report can say "requests touching shard 2".
"""

from __future__ import annotations

import bisect
import itertools
import random
from array import array
from dataclasses import dataclass
from typing import Any

from demo_app.schema import WORDS, make_item
from demo_app.shards import shard_for

__all__ = ["KINDS", "KeyChooser", "Planned", "RequestPlanner", "parse_keys", "parse_mix"]

#: Request kinds and the default mix.
KINDS = {"get": 60.0, "multiget": 15.0, "search": 10.0, "put": 10.0, "checkout": 5.0}
MAX_ZIPF_KEYS = 2_000_000


def parse_mix(text: str) -> dict[str, float]:
    """``get=70,put=5,…`` → weights (kinds not named get 0)."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in KINDS:
            raise ValueError(
                f"--mix: {part!r} is not KIND=WEIGHT with KIND one of {', '.join(KINDS)}"
            )
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"--mix: weight of {name} must be a number, got {value!r}") from None
        if not 0 <= weight < float("inf"):
            raise ValueError(f"--mix: weight of {name} must be ≥ 0")
        mix[name.strip()] = weight
    if sum(mix.values()) <= 0:
        raise ValueError("--mix: at least one weight must be positive")
    return mix


def parse_keys(text: str) -> float | None:
    """``uniform`` → None; ``zipf:S`` → the exponent S (> 0)."""
    if text == "uniform":
        return None
    name, _, exponent = text.partition(":")
    try:
        s = float(exponent)
    except ValueError:
        s = -1.0
    if name != "zipf" or not 0 < s <= 10:
        raise ValueError(f"--keys must be uniform or zipf:S with 0 < S ≤ 10, got {text!r}")
    return s


class KeyChooser:
    """Item ids 1 … max_id, uniform or Zipf(s) by rank; the hot_keys fault overrides a share."""

    def __init__(self, max_id: int, zipf_s: float | None, rng: random.Random) -> None:
        self.max_id = max_id
        self._rng = rng
        self._cum: array[float] | None = None
        if zipf_s is not None:
            if max_id > MAX_ZIPF_KEYS:
                raise ValueError(f"--max-id ≤ {MAX_ZIPF_KEYS} with zipf keys")
            weights = (1.0 / k**zipf_s for k in range(1, max_id + 1))
            self._cum = array("d", itertools.accumulate(weights))
        self.hot_ids: list[int] = []
        self.hot_share = 0.0

    def pick(self) -> int:
        # hot_keys (read from the service): a small set of keys gets most of the traffic.
        if self.hot_ids and self._rng.random() < self.hot_share:
            return self._rng.choice(self.hot_ids)
        if self._cum is None:
            return self._rng.randint(1, self.max_id)
        x = self._rng.random() * self._cum[-1]
        return min(bisect.bisect_left(self._cum, x) + 1, self.max_id)


@dataclass(frozen=True)
class Planned:
    kind: str
    method: str
    template: str
    url: str
    body: dict[str, Any] | None
    shards: tuple[int, ...]


class RequestPlanner:
    """Draws requests from the mix; ``shards`` is learned from the demo's /healthz."""

    def __init__(self, mix: dict[str, float], keys: KeyChooser, rng: random.Random) -> None:
        self._kinds = list(mix)
        self._weights = list(itertools.accumulate(mix.values()))
        self._keys = keys
        self._rng = rng
        self.shards = 1

    def plan(self) -> Planned:
        """The next request: its kind by weight, its keys, and the shards it will touch."""
        kind = self._kinds[
            bisect.bisect_right(self._weights, self._rng.random() * self._weights[-1])
        ]
        n = self.shards
        if kind == "get":
            key = self._keys.pick()
            return Planned(
                kind, "GET", "/items/{item_id}", f"/items/{key}", None, (shard_for(key, n),)
            )
        if kind == "put":
            key = self._keys.pick()
            item = make_item(key)
            body = {
                "name": item.name,
                "price": item.price,
                "stock": self._rng.randint(50, 500),
                "text": item.text,
            }
            return Planned(
                kind, "PUT", "/items/{item_id}", f"/items/{key}", body, (shard_for(key, n),)
            )
        if kind == "multiget":
            ids = sorted({self._keys.pick() for _ in range(5)})
            shards = tuple(sorted({shard_for(k, n) for k in ids}))
            return Planned(
                kind, "GET", "/items", f"/items?ids={','.join(map(str, ids))}", None, shards
            )
        if kind == "search":
            word = self._rng.choice(WORDS)
            return Planned(
                kind, "GET", "/search", f"/search?q={word}&limit=10", None, tuple(range(n))
            )
        ids = sorted({self._keys.pick() for _ in range(self._rng.randint(1, 3))})
        body = {"items": [{"id": k, "quantity": 1} for k in ids], "customer": "narrows-load"}
        shards = tuple(sorted({shard_for(k, n) for k in ids}))
        return Planned(kind, "POST", "/orders", "/orders", body, shards)
