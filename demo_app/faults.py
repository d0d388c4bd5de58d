"""Fault switches: the demo's known bottlenecks, graded, switchable at runtime and seeded.

This module holds only the *state* (which faults are on, their parameters, a seeded random
generator each). The defect itself is simulated where it would live in a real system, with
a comment there saying what it simulates:

    slow_shard, failing_shard   demo_app/shards.py   (the shard's database)
    pool_size                   demo_app/pool.py     (the connection pool's configuration)
    cache_outage                demo_app/cache.py    (the cache client)
    cache_ttl, sequential_fanout demo_app/catalog.py (the cache-aside TTL, the fan-out loop)
    cpu_burn                    demo_app/routes.py   (CPU work on the event loop in a handler)
    hot_keys                    demo_app/load.py     (the traffic itself; read from /admin/faults)

The micro topology's faults (slow_replica, replica_down, retry_storm) are specified in
demo_app/micro/faults.py and use the same ``Faults`` state with a wider spec table.

Ground truth stays out of the telemetry: nothing here touches spans, metrics or logs, except
``log_change`` — the one "fault changed" line the admin endpoint writes.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from demo_app.exceptions import InvalidFaultParams, UnknownFault

__all__ = [
    "ALL_FAULTS",
    "FAULTS",
    "MICRO_FAULTS",
    "FaultSpec",
    "Faults",
    "Param",
    "log_change",
    "parse_fault_arg",
]

_log = logging.getLogger("demo_app.admin")

Value = int | float | str


@dataclass(frozen=True)
class Param:
    """One parameter of a fault: its type, range and default (``None`` = required)."""

    name: str
    kind: type
    default: Value | None
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.kind.__name__,
            "default": self.default,
            "required": self.default is None,
            "min": self.minimum,
            "max": self.maximum,
            "help": self.help,
        }


@dataclass(frozen=True)
class FaultSpec:
    name: str
    help: str
    params: tuple[Param, ...] = ()


_SHARD = Param("shard", int, None, 0, None, "shard index (0 … shards-1)")
_SEED = Param("seed", int, 0, 0, 2**63 - 1, "random seed (0 = the service's --fault-seed)")

FAULTS: dict[str, FaultSpec] = {
    spec.name: spec
    for spec in (
        FaultSpec(
            "slow_shard",
            "queries on one shard take longer",
            (
                _SHARD,
                Param("delay_ms", float, 100.0, 0, 60_000, "added to every query"),
                Param("jitter_ms", float, 0.0, 0, 60_000, "plus a uniform 0…jitter_ms"),
            ),
        ),
        FaultSpec(
            "failing_shard",
            "queries on one shard fail",
            (_SHARD, Param("error_rate", float, 1.0, 0, 1, "share of queries that fail")),
        ),
        FaultSpec("cache_outage", "the cache is unreachable"),
        FaultSpec(
            "cache_ttl",
            "very short cache TTL: stampedes and a low hit ratio",
            (Param("seconds", float, 0.5, 0.001, 86_400, "TTL of new cache entries"),),
        ),
        FaultSpec(
            "hot_keys",
            "a small set of keys receives most traffic (applied by `narrows load`)",
            (
                Param("share", float, 0.9, 0, 1, "share of requests that go to the hot keys"),
                Param("keys", int, 10, 1, 10_000, "how many hot keys"),
            ),
        ),
        FaultSpec(
            "sequential_fanout",
            "multi-get and search call shards one after another (the N+1 staircase)",
        ),
        FaultSpec(
            "pool_size",
            "a shard's connection pool is this small: contention and queueing",
            (_SHARD, Param("size", int, 1, 1, 64, "connections")),
        ),
        FaultSpec(
            "cpu_burn",
            "CPU work on the event loop in a route's handler: everything slows",
            (
                Param("route", str, "*", help="route template, e.g. /items/{item_id}, or *"),
                Param("ms", float, 20.0, 0.1, 1_000, "CPU milliseconds per request"),
            ),
        ),
    )
}


#: retry_storm's catalog hiccups last this long (see ``Faults.in_hiccup``)
HICCUP_SLOT_S = 0.2
_INSTANCE = Param("instance", int, None, 0, None, "catalog replica index (0 … replicas-1)")

#: Faults of the micro topology (`narrows up --topology micro`); where each one is simulated:
#:   slow_replica   demo_app/micro/catalog_app.py  (a replica on a degraded host)
#:   replica_down   narrows/supervisor.py          (the replica's process is gone)
#:   retry_storm    demo_app/micro/upstream.py     (the gateway's retry policy) and
#:                  demo_app/micro/catalog_app.py  (the few failures that set it off)
MICRO_FAULTS: dict[str, FaultSpec] = {
    spec.name: spec
    for spec in (
        FaultSpec(
            "slow_replica",
            "one catalog replica answers every request late",
            (
                _INSTANCE,
                Param("delay_ms", float, 200.0, 0, 60_000, "added to every request"),
                Param("jitter_ms", float, 0.0, 0, 60_000, "plus a uniform 0…jitter_ms"),
            ),
        ),
        FaultSpec(
            "replica_down",
            "one catalog replica's process is stopped and not restarted while this is on",
            (_INSTANCE,),
        ),
        FaultSpec(
            "retry_storm",
            "the gateway retries every failed call at once, many times, against a catalog "
            "that fails a few requests",
            (
                Param("retries", int, 5, 1, 20, "retries per call"),
                Param("backoff_ms", float, 0.0, 0, 10_000, "pause before each retry"),
                Param("error_rate", float, 0.05, 0, 1, "share of time the catalog fails"),
            ),
        ),
    )
}
ALL_FAULTS: dict[str, FaultSpec] = {**FAULTS, **MICRO_FAULTS}


def _coerce(param: Param, value: object) -> Value:
    """Strict JSON types, plus numeric strings (what `k=v` on a command line gives)."""
    if param.kind is str:
        if not isinstance(value, str) or not value or len(value) > 200:
            raise InvalidFaultParams(f"{param.name} must be a non-empty string (≤ 200 chars)")
        return value
    article = "an" if param.kind is int else "a"
    if isinstance(value, bool):
        raise InvalidFaultParams(
            f"{param.name} must be {article} {param.kind.__name__}, not a boolean"
        )
    if not isinstance(value, int | float | str):
        raise InvalidFaultParams(
            f"{param.name} must be {article} {param.kind.__name__}, got {value!r}"
        )
    try:
        if param.kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            number: int | float = int(value)
        else:
            number = float(value)
    except (ValueError, OverflowError):
        raise InvalidFaultParams(
            f"{param.name} must be {article} {param.kind.__name__}, got {value!r}"
        ) from None
    if (
        number != number
        or (param.minimum is not None and number < param.minimum)
        or (param.maximum is not None and number > param.maximum)
    ):
        raise InvalidFaultParams(
            f"{param.name}={value!r} is out of range {param.minimum} … {param.maximum}"
        )
    return number


def _rng(seed: int, name: str) -> random.Random:
    return random.Random(f"{seed}:{name}")


class Faults:
    """The active faults of one service, with typed accessors for the places that misbehave."""

    def __init__(
        self,
        *,
        shards: int,
        routes: Sequence[str],
        seed: int = 1,
        item_count: int = 10_000,
        specs: Mapping[str, FaultSpec] = FAULTS,
        replicas: int = 1,
        instance: int = 0,
    ) -> None:
        self._specs = dict(specs)
        self._replicas = replicas
        #: this process's replica index (the micro topology's catalog replicas)
        self.instance = instance
        self._shards = shards
        self._routes = tuple(routes)
        self._seed = seed
        self._item_count = max(1, item_count)
        self._active: dict[str, dict[str, Value]] = {}
        self._rngs: dict[str, random.Random] = {}
        self._hot_ids: list[int] = []

    # --- switching ------------------------------------------------------------------------

    def spec(self, name: str) -> FaultSpec:
        spec = self._specs.get(name)
        if spec is None:
            known = ", ".join(self._specs)
            raise UnknownFault(f"unknown fault {name[:50]!r}; known faults: {known}")
        return spec

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    @property
    def shards(self) -> int:
        return self._shards

    @property
    def seed(self) -> int:
        return self._seed

    def active(self) -> dict[str, dict[str, Value]]:
        """The faults that are on, with their parameters (a copy)."""
        return {name: dict(params) for name, params in self._active.items()}

    def validate(self, name: str, raw: Mapping[str, object]) -> dict[str, Value]:
        """Parameters with defaults filled in; UnknownFault/InvalidFaultParams say what is wrong."""
        spec = self.spec(name)
        params = {p.name: p for p in (*spec.params, _SEED)}
        unknown = sorted(set(raw) - set(params))
        if unknown:
            raise InvalidFaultParams(
                f"{name} has no parameter {', '.join(unknown)}; its parameters: {', '.join(params)}"
            )
        out: dict[str, Value] = {}
        for pname, param in params.items():
            if pname in raw:
                out[pname] = _coerce(param, raw[pname])
            elif param.default is None:
                raise InvalidFaultParams(f"{name} needs {pname} ({param.help})")
            else:
                out[pname] = param.default
        if "shard" in out and not 0 <= int(out["shard"]) < self._shards:
            raise InvalidFaultParams(f"shard={out['shard']} is out of range 0 … {self._shards - 1}")
        if "instance" in out and not 0 <= int(out["instance"]) < self._replicas:
            raise InvalidFaultParams(
                f"instance={out['instance']} is out of range 0 … {self._replicas - 1}"
            )
        if name == "cpu_burn" and out["route"] != "*" and out["route"] not in self._routes:
            raise InvalidFaultParams(
                f"route {out['route']!r} is not a route of this service; "
                f"routes: *, {', '.join(self._routes)}"
            )
        return out

    def set(self, name: str, raw: Mapping[str, object]) -> dict[str, Value]:
        """Switch a fault on (or change its grade); resets its seeded random generator."""
        params = self.validate(name, raw)
        seed = int(params["seed"]) or self._seed
        self._active[name] = params
        self._rngs[name] = _rng(seed, name)
        if name == "hot_keys":
            population = range(1, self._item_count + 1)
            count = min(int(params["keys"]), len(population))
            self._hot_ids = sorted(_rng(seed, "hot_keys.ids").sample(population, count))
        return params

    def clear(self, name: str) -> dict[str, Value] | None:
        self.spec(name)
        self._rngs.pop(name, None)
        if name == "hot_keys":
            self._hot_ids = []
        return self._active.pop(name, None)

    def clear_all(self) -> dict[str, dict[str, Value]]:
        cleared = dict(self._active)
        for name in cleared:
            self.clear(name)
        return cleared

    def params(self, name: str) -> dict[str, Value] | None:
        return self._active.get(name)

    def describe(self, name: str | None = None) -> list[dict[str, Any]]:
        """What GET /admin/faults answers: every fault, active or not, with its parameters."""
        out = []
        for spec in self._specs.values():
            if name is not None and spec.name != name:
                continue
            entry: dict[str, Any] = {
                "name": spec.name,
                "help": spec.help,
                "active": spec.name in self._active,
                "params": self._active.get(spec.name),
                "parameters": [p.describe() for p in spec.params],
            }
            if spec.name == "hot_keys" and spec.name in self._active:
                entry["hot_ids"] = list(self._hot_ids)
            out.append(entry)
        return out

    # --- accessors for the places that misbehave -------------------------------------------

    def _on_shard(self, name: str, shard: int) -> dict[str, Value] | None:
        params = self._active.get(name)
        return params if params is not None and params["shard"] == shard else None

    def shard_delay_s(self, shard: int) -> float:
        params = self._on_shard("slow_shard", shard)
        if params is None:
            return 0.0
        jitter = float(params["jitter_ms"])
        extra = self._rngs["slow_shard"].uniform(0, jitter) if jitter else 0.0
        return (float(params["delay_ms"]) + extra) / 1000.0

    def shard_fails(self, shard: int) -> bool:
        params = self._on_shard("failing_shard", shard)
        if params is None:
            return False
        return self._rngs["failing_shard"].random() < float(params["error_rate"])

    def cache_unreachable(self) -> bool:
        return "cache_outage" in self._active

    def cache_ttl_s(self, configured: float) -> float:
        params = self._active.get("cache_ttl")
        return configured if params is None else float(params["seconds"])

    def sequential_fanout(self) -> bool:
        return "sequential_fanout" in self._active

    def pool_limit(self, shard: int, configured: int) -> int:
        params = self._on_shard("pool_size", shard)
        return configured if params is None else int(params["size"])

    def cpu_burn_ms(self, route: str) -> float:
        params = self._active.get("cpu_burn")
        if params is None or params["route"] not in ("*", route):
            return 0.0
        return float(params["ms"])

    def hot_ids(self) -> list[int]:
        return list(self._hot_ids)

    def replica_delay_s(self) -> float:
        """Extra latency of this replica (slow_replica naming this process's index)."""
        params = self._active.get("slow_replica")
        if params is None or int(params["instance"]) != self.instance:
            return 0.0
        jitter = float(params["jitter_ms"])
        extra = self._rngs["slow_replica"].uniform(0, jitter) if jitter else 0.0
        return (float(params["delay_ms"]) + extra) / 1000.0

    def in_hiccup(self, now: float) -> bool:
        """Whether wall-clock time ``now`` falls in one of retry_storm's short catalog
        hiccups: 200 ms slots, ``error_rate`` of them failing, chosen by a hash of the slot
        and the seed — the same slots in every replica (a shared dependency stalling)."""
        params = self._active.get("retry_storm")
        if params is None:
            return False
        slot = int(now / HICCUP_SLOT_S)
        seed = int(params["seed"]) or self._seed
        return random.Random(slot * 1_000_003 + seed).random() < float(params["error_rate"])

    def aggressive_retries(self) -> tuple[int, float] | None:
        """retry_storm's (retries, backoff seconds) for a client, or None (normal policy)."""
        params = self._active.get("retry_storm")
        if params is None:
            return None
        return int(params["retries"]), float(params["backoff_ms"]) / 1000.0

    def replica_down(self) -> int | None:
        """The index of the catalog replica that replica_down stops, if it is on."""
        params = self._active.get("replica_down")
        return None if params is None else int(params["instance"])


def parse_fault_arg(text: str) -> tuple[str, dict[str, Value]]:
    """``NAME`` or ``NAME:key=value,key=value`` (as `narrows up --fault` takes it)."""
    name, _, rest = text.partition(":")
    raw: dict[str, Value] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidFaultParams(f"{text!r}: expected NAME:key=value,… (got {item!r})")
        raw[key.strip()] = parse_value(value.strip())
    return name.strip(), raw


def parse_value(text: str) -> Value:
    """A command-line value: an int, else a float, else the string itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def log_change(name: str, old: Mapping[str, Value] | None, new: Mapping[str, Value] | None) -> None:
    """The one line that names a fault: written when an operator switches it (HotROD style)."""
    _log.warning(
        "fault changed: %s %s -> %s",
        name,
        dict(old) if old else "off",
        dict(new) if new else "off",
    )
