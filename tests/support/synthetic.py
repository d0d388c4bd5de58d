"""Demo-shaped synthetic traces with switchable fault signatures, for the analysis tests.

A small discrete-event model of the demo service (demo_app/catalog.py, checkout.py), not a
replay: requests arrive as a Poisson process on four routes; ``GET /items/{id}`` reads a
TTL cache then its shard; ``GET /items`` (multi-get) queries each shard it touches in
parallel, without the cache; ``GET /search`` scatters over every shard in parallel;
``POST /orders`` reads its items (cache, shard) in parallel, then runs one transaction per
shard involved (BEGIN … UPDATE/INSERT, holding a connection) and commits them in order.
Each shard has a bounded connection pool (real queueing: a query waits for the earliest
free connection, recorded in ``app.pool.wait_ms``); the event loop is one resource (CPU
burn on one route delays every other request's continuations). Span names and attributes
follow docs/telemetry.md. Faults change the mechanism, never a label:

* ``slow_shard`` (shard, delay_ms, jitter_ms) · ``failing_shard`` (shard, error_rate)
* ``cache_outage`` · ``cache_ttl`` (seconds) · ``hot_keys`` (share, keys, shard)
* ``sequential_fanout`` · ``pool_size`` (shard, size) · ``cpu_burn`` (route, ms)

Faults switch on at ``fault_start`` × the window, like flipping a switch mid-run.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dashboard.sources.model import Span, Trace

__all__ = ["Fault", "Scenario", "generate"]

SERVICE = "demo"
LOADGEN = "narrows-load"
T0_NS = 1_700_000_000 * 10**9
MS = 1_000_000  # ns

ROUTES: dict[str, tuple[str, str]] = {
    "item": ("GET", "/items/{id}"),
    "multi": ("GET", "/items"),
    "search": ("GET", "/search"),
    "order": ("POST", "/orders"),
    "put": ("PUT", "/items/{id}"),
}


@dataclass(frozen=True)
class Fault:
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)


@dataclass(frozen=True)
class Scenario:
    seed: int = 0
    rate_rps: float = 150.0
    duration_s: float = 20.0
    shards: int = 4
    pool_size: int = 4
    keys: int = 10_000
    zipf_s: float = 1.1
    ttl_s: float = 120.0
    weights: Mapping[str, float] = field(
        # narrows load's default mix: get=60, multiget=15, search=10, put=10, checkout=5
        default_factory=lambda: {
            "item": 0.60,
            "multi": 0.15,
            "search": 0.10,
            "put": 0.10,
            "order": 0.05,
        }
    )
    faults: tuple[Fault, ...] = ()
    fault_start: float = 0.0
    #: The load generator's client span as the trace root (it propagates traceparent).
    client_spans: bool = True
    #: Simulated (and discarded) before the window, so caches and pools start settled.
    warmup_s: float = 10.0


class _Connection:
    """One pooled connection's busy intervals (requests are simulated in arrival order,
    so a later request may fill a gap before an earlier one's query)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def earliest(self, t: int, duration: int) -> int:
        j = bisect.bisect_right(self.ends, t)
        start = t
        while j < len(self.starts) and self.starts[j] < start + duration:
            start = max(start, self.ends[j])
            j += 1
        return start

    def book(self, start: int, end: int) -> None:
        j = bisect.bisect_left(self.starts, start)
        self.starts.insert(j, start)
        self.ends.insert(j, end)


class _Sim:
    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.rng = random.Random(sc.seed)
        self.fault = {f.name: f for f in sc.faults}
        self.fault_from_ns = T0_NS + int(sc.fault_start * sc.duration_s * 1e9)
        self.pools = [[_Connection() for _ in range(sc.pool_size)] for _ in range(sc.shards)]
        if "pool_size" in self.fault:
            f = self.fault["pool_size"]
            self.small_pool = (int(f.get("shard", 0)), int(f.get("size", 1)))
        else:
            self.small_pool = None
        self.cache: dict[int, tuple[int, int]] = {}  # key → (ready_ns, expires_ns)
        weights = [1.0 / (k + 1) ** sc.zipf_s for k in range(sc.keys)]
        total = sum(weights)
        self.key_cdf = list(_accumulate([w / total for w in weights]))
        self.busy: list[tuple[int, int]] = []  # event-loop busy intervals (cpu_burn)
        self.busy_starts: list[int] = []
        self.hot_keys: dict[tuple[int, int], list[int]] = {}
        self.burn_of: dict[int, int] = {}  # burning request's arrival → end of its burn
        self.spans: list[Span] = []
        self.trace_id = ""

    # --- helpers -------------------------------------------------------------------------
    def active(self, name: str, t: int) -> Fault | None:
        f = self.fault.get(name)
        return f if f is not None and t >= self.fault_from_ns else None

    def lognorm_ms(self, median: float, sigma: float = 0.3) -> int:
        return int(median * math.exp(self.rng.gauss(0.0, sigma)) * MS)

    def new_id(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def shard_of(self, key: int) -> int:
        return ((key * 2654435761) & 0xFFFFFFFF) % self.sc.shards

    def pick_key(self, t: int) -> int:
        hot = self.active("hot_keys", t)
        if hot is not None and self.rng.random() < float(hot.get("share", 0.8)):
            shard, n = int(hot.get("shard", 0)), int(hot.get("keys", 5))
            if (shard, n) not in self.hot_keys:
                self.hot_keys[(shard, n)] = [
                    k for k in range(1, 5000) if self.shard_of(k) == shard
                ][:n]
            return self.rng.choice(self.hot_keys[(shard, n)])
        return bisect.bisect_left(self.key_cdf, self.rng.random()) + 1

    def loop_resume(self, t: int) -> int:
        """When the event loop can run a continuation scheduled at ``t``."""
        i = bisect.bisect_right(self.busy_starts, t) - 1
        if i >= 0 and self.busy[i][0] <= t < self.busy[i][1]:
            return self.busy[i][1]
        return t

    def span(
        self,
        parent: str,
        name: str,
        kind: int,
        start: int,
        end: int,
        attrs: dict[str, Any],
        error: bool = False,
        events: list[dict[str, Any]] | None = None,
    ) -> str:
        """A new span under ``parent``; returns its id."""
        return self.add(self.new_id(), parent, name, kind, start, end, attrs, error, events)

    def add(
        self,
        sid: str,
        parent: str,
        name: str,
        kind: int,
        start: int,
        end: int,
        attrs: dict[str, Any],
        error: bool = False,
        events: list[dict[str, Any]] | None = None,
    ) -> str:
        """The span with id ``sid`` (the micro builder overrides this to add its process)."""
        self.spans.append(
            Span(
                self.trace_id,
                sid,
                parent,
                SERVICE,
                name,
                kind,
                start,
                end,
                2 if error else 0,
                attrs,
                events or [],
            )
        )
        return sid

    # --- the service's dependencies ---------------------------------------------------------
    def cache_get(self, parent: str, t: int, key: int) -> tuple[int, bool | None]:
        """A cache lookup span at ``t``; returns (end, hit) with hit None on a cache error."""
        if self.active("cache_outage", t):
            end = t + self.lognorm_ms(1.0, 0.2)  # connection refused / timeout to the cache
            self.span(
                parent,
                "cache.get items",
                3,
                t,
                end,
                {
                    "app.cache.name": "items",
                    "app.cache.hit": False,
                    "error.type": "ConnectionError",
                },
                error=True,
            )
            return end, None
        ready, expires = self.cache.get(key, (0, -1))
        hit = ready <= t < expires
        end = t + self.lognorm_ms(0.15, 0.3)
        self.span(
            parent, "cache.get items", 3, t, end, {"app.cache.name": "items", "app.cache.hit": hit}
        )
        return end, hit

    def cache_fill(self, key: int, at: int) -> None:
        ttl = self.active("cache_ttl", at)
        ttl_s = float(ttl.get("seconds", 0.5)) if ttl else self.sc.ttl_s
        if not self.active("cache_outage", at):
            self.cache[key] = (at, at + int(ttl_s * 1e9))

    def work(self, t: int, shard: int, median: float) -> tuple[int, bool]:
        """One statement's time on ``shard`` (ns) and whether it fails: the database's own
        speed plus the slow_shard delay; failing_shard fails it early."""
        service = self.lognorm_ms(median, 0.3)
        slow = self.active("slow_shard", t)
        if slow is not None and int(slow.get("shard", 0)) == shard:
            jitter = float(slow.get("jitter_ms", 0.0))
            service += int(
                (float(slow.get("delay_ms", 40.0)) + self.rng.uniform(-jitter, jitter)) * MS
            )
        failing = self.active("failing_shard", t)
        if (
            failing is not None
            and int(failing.get("shard", 0)) == shard
            and self.rng.random() < float(failing.get("error_rate", 0.2))
        ):
            return self.lognorm_ms(0.3, 0.3), True
        return service, False

    def acquire(self, t: int, shard: int, hold: int) -> int:
        """Wait for the connection that can be held for ``hold`` ns soonest; book it."""
        pool = self.pools[shard]
        if self.small_pool and self.small_pool[0] == shard and t >= self.fault_from_ns:
            pool = pool[: self.small_pool[1]]
        start, conn = min(((c.earliest(t, hold), c) for c in pool), key=lambda sc_: sc_[0])
        conn.book(start, start + hold)
        return start

    def shard_span(
        self,
        parent: str,
        shard: int,
        op: str,
        coll: str,
        start: int,
        end: int,
        *,
        wait: int = 0,
        failed: bool = False,
    ) -> None:
        attrs: dict[str, Any] = {
            "db.system.name": "sqlite",
            "db.namespace": f"shard_{shard}",
            "db.operation.name": op,
            "db.collection.name": coll,
            "app.shard.id": str(shard),
            "app.pool.wait_ms": wait / MS,
        }
        events = None
        if failed:
            attrs["error.type"] = "OperationalError"
            events = [{"name": "exception", "attributes": {"exception.type": "OperationalError"}}]
        self.span(parent, f"{op} {coll}", 3, start, end, attrs, error=failed, events=events)

    def query(
        self, parent: str, t: int, shard: int, op: str, coll: str, median: float
    ) -> tuple[int, bool]:
        """A shard query span from ``t``: pool wait, then work. Returns (end, failed)."""
        service, failed = self.work(t, shard, median)
        start = self.acquire(t, shard, service)
        end = start + service
        self.shard_span(parent, shard, op, coll, t, end, wait=start - t, failed=failed)
        return end, failed

    def fan_out(
        self, parent: str, t: int, shards: list[int], op: str, median: float
    ) -> tuple[int, bool]:
        """Parallel queries (sequential under the fault); returns (resume time, any failed)."""
        sequential = self.active("sequential_fanout", t) is not None
        end, failed, cur = t, False, t
        for i, shard in enumerate(shards):
            start = cur if sequential else t + i * 20_000
            q_end, q_failed = self.query(parent, start, shard, op, "items", median)
            failed |= q_failed
            end = max(end, q_end)
            cur = q_end + 30_000
            if sequential and q_failed:
                break
        return self.loop_resume(end), failed

    # --- routes ------------------------------------------------------------------------------
    def get_item(self, server: str, t: int, key: int) -> tuple[int, bool]:
        """Cache-aside read of one key: lookup, then its shard on a miss (and fill)."""
        t, hit = self.cache_get(server, t, key)
        t = self.loop_resume(t)
        if hit:
            return t, False
        t, failed = self.query(server, t, self.shard_of(key), "SELECT", "items", 1.2)
        t = self.loop_resume(t)
        if not failed:
            self.cache_fill(key, t)
        return t, failed

    def checkout(self, server: str, t: int, keys: list[int]) -> tuple[int, bool]:
        """The demo's checkout: read the items in parallel (always), then one transaction
        per shard involved, in ascending order, holding a connection from BEGIN to its
        statements' end; commits last. A failure anywhere fails the request."""
        reads = [self.get_item(server, t + i * 20_000, k) for i, k in enumerate(keys)]
        t = max(end for end, _ in reads)
        if any(failed for _, failed in reads):
            return t, True
        order_shard = self.rng.randrange(self.sc.shards)
        involved = sorted({self.shard_of(k) for k in keys} | {order_shard})
        commits: list[tuple[int, int, bool]] = []
        for shard in involved:
            steps = [("BEGIN", "items", 0.3)]
            steps += [("UPDATE", "items", 1.0) for k in keys if self.shard_of(k) == shard]
            steps += [("INSERT", "orders", 1.2)] if shard == order_shard else []
            works = [self.work(t, shard, median) for _, _, median in steps]
            commit, commit_failed = self.work(t, shard, 0.5)
            start = self.acquire(t, shard, sum(w for w, _ in works) + commit)
            for i, ((op, coll, _), (w, failed)) in enumerate(zip(steps, works, strict=True)):
                first = i == 0  # BEGIN carries the wait for the connection
                self.shard_span(
                    server,
                    shard,
                    op,
                    coll,
                    t if first else start,
                    start + w,
                    wait=start - t if first else 0,
                    failed=failed,
                )
                start += w
                if failed:
                    return self.loop_resume(start), True
            t = self.loop_resume(start)
            commits.append((shard, commit, commit_failed))
        for shard, commit, failed in commits:
            self.shard_span(server, shard, "COMMIT", "items", t, t + commit, failed=failed)
            t = self.loop_resume(t + commit)
            if failed:
                return t, True
        for key in keys:
            self.cache.pop(key, None)  # invalidate after the commit
        return t, False

    def request(self, arrival: int, route: str) -> Trace:
        self.trace_id = f"{self.rng.getrandbits(128):032x}"
        self.spans = []
        method, template = ROUTES[route]
        client = self.new_id() if self.sc.client_spans else ""
        server = self.new_id()
        start = self.loop_resume(arrival + 150_000)
        t = start + self.lognorm_ms(0.25, 0.3)
        if arrival in self.burn_of:
            t = max(t, self.burn_of[arrival])  # CPU work on the event loop, no I/O child
        failed = False
        path = template
        if route == "item":
            key = self.pick_key(t)
            path = f"/items/{key}"
            t, failed = self.get_item(server, t, key)
        elif route == "multi":
            # The demo's multi-get skips the cache: one query per shard touched.
            keys = [self.pick_key(t) for _ in range(self.rng.randint(2, 6))]
            shards = sorted({self.shard_of(k) for k in keys})
            t, failed = self.fan_out(server, t, shards, "SELECT", 1.2)
        elif route == "search":
            t, failed = self.fan_out(server, t, list(range(self.sc.shards)), "SELECT", 4.0)
            t += self.lognorm_ms(0.5, 0.3)
        elif route == "put":
            key = self.pick_key(t)
            path = f"/items/{key}"
            t, failed = self.query(server, t, self.shard_of(key), "UPSERT", "items", 1.0)
            t = self.loop_resume(t)
            self.cache.pop(key, None)  # invalidate on write
        else:
            keys = list(dict.fromkeys(self.pick_key(t) for _ in range(self.rng.randint(1, 3))))
            t, failed = self.checkout(server, t, keys)
        end = t + self.lognorm_ms(0.15, 0.3)
        status = 500 if failed else 200
        attrs = {
            "http.request.method": method,
            "http.route": template,
            "url.path": path,
            "url.scheme": "http",
            "http.response.status_code": status,
        }
        if failed:
            attrs["error.type"] = "500"
        span = Span(
            self.trace_id,
            server,
            client,
            SERVICE,
            f"{method} {template}",
            2,
            start,
            end,
            2 if failed else 0,
            attrs,
            [],
        )
        self.spans.append(span)
        if client:
            self.spans.append(
                Span(
                    self.trace_id,
                    client,
                    "",
                    LOADGEN,
                    method,
                    3,
                    arrival,
                    end + 120_000,
                    2 if failed else 0,
                    {"http.request.method": method, "http.response.status_code": status},
                    [],
                )
            )
        return Trace(self.trace_id, sorted(self.spans, key=lambda s: s.start_ns))


def _accumulate(values: list[float]) -> list[float]:
    out, total = [], 0.0
    for v in values:
        total += v
        out.append(total)
    return out


def _route_key(route: str) -> str:
    for key, (_, template) in ROUTES.items():
        if route in (template, f"{ROUTES[key][0]} {template}"):
            return key
    raise ValueError(f"unknown route {route!r}")


def generate(sc: Scenario) -> list[Trace]:
    sim = _Sim(sc)
    arrivals: list[tuple[int, str]] = []
    t = -sc.warmup_s
    names, weights = list(sc.weights), list(sc.weights.values())
    while True:
        t += sim.rng.expovariate(sc.rate_rps)
        if t >= sc.duration_s:
            break
        arrivals.append((T0_NS + int(t * 1e9), sim.rng.choices(names, weights)[0]))
    _prefill_cache(sim, T0_NS - int(sc.warmup_s * 1e9))
    burn = sim.fault.get("cpu_burn")
    if burn is not None:
        # The loop is one resource: burns run one after another from their arrival.
        target, ms = str(burn.get("route", "/search")), float(burn.get("ms", 20.0))
        route = None if target == "*" else _route_key(target)
        free = 0
        for at, r in arrivals:
            if route in (r, None) and at >= sim.fault_from_ns:
                s = max(at + 1_000_000, free)
                free = s + int(ms * MS)
                sim.busy.append((s, free))
                sim.burn_of[at] = free
        sim.busy_starts = [s for s, _ in sim.busy]
    traces = [sim.request(at, r) for at, r in arrivals]
    return [t for (at, _), t in zip(arrivals, traces, strict=True) if at >= T0_NS]


def _prefill_cache(sim: _Sim, start_ns: int) -> None:
    """Steady state at the window's start, as if the service had been running a while:
    key k (looked up at rate r, invalidated by writes at rate v) stays cached for
    m = (1 − e^(−v·TTL)) / v after each fill and is refilled 1/r after expiring, so it is
    cached with probability m / (m + 1/r)."""
    sc = sim.sc
    total = sum(sc.weights.values())
    per_request = {"item": 1.0, "multi": 0.0, "search": 0.0, "put": 0.0, "order": 2.0}
    lookups_per_s = sc.rate_rps * sum(w * per_request[r] for r, w in sc.weights.items()) / total
    writes_per_s = (
        sc.rate_rps * (sc.weights.get("order", 0.0) * 2.0 + sc.weights.get("put", 0.0)) / total
    )
    prev = 0.0
    for k, c in enumerate(sim.key_cdf, start=1):
        share = c - prev
        prev = c
        r, v = share * lookups_per_s, share * writes_per_s
        if r <= 0:
            continue
        m = (1.0 - math.exp(-v * sc.ttl_s)) / v if v > 0 else sc.ttl_s
        if sim.rng.random() < m / (m + 1.0 / r):
            sim.cache[k] = (0, start_ns + int(sim.rng.uniform(0, min(m, sc.ttl_s)) * 1e9))
