"""The demo split into gateway, catalog replicas and orders (/work/notes/micro-contract.md,
docs/telemetry.md), as synthetic traces with the replica faults, for the service-map tests.

The single-service model (tests/support/synthetic.py) runs everything inside the catalog —
cache, shards with bounded pools, the event loop, the shard faults — and each request is
wrapped in the hops of the micro topology:

* ``narrows-load`` → ``narrows-gateway`` (SERVER) → CLIENT → ``narrows-catalog`` replica
  (SERVER) → cache and shard spans;
* ``POST /orders``: gateway → ``narrows-orders`` → CLIENT → a catalog replica (``POST
  /stock/reserve``: the checkout's reads and per-shard transactions), then orders writes
  the order to its own shard.

Every process has ``service.instance.id`` in its resource (``gateway-0``, ``catalog-2``,
``orders-0``). Callers balance round-robin over the replicas they have not ejected; each
attempt is its own CLIENT span (``app.upstream.service``/``instance``; from the second on
``http.request.resend_count``), and the callee's SERVER span is its child, after a network
hop each way. The healthy policy retries connection errors and 502/503/504 up to
``retries`` times, ``backoff_ms`` × 2ⁿ apart. Faults change the mechanism, never a label:

* ``slow_replica`` (instance, delay_ms, jitter_ms, where): that catalog replica waits
  before handling every request (``where="server"``, inside its server span, like a slow
  middleware), or each of its shard statements takes that much longer (``"queries"``, like
  a replica on a slow host or a bad network path to the databases);
* ``replica_down`` (instance): that replica refuses connections; a caller ejects it after
  ``eject_after`` consecutive failures (log event ``upstream ejected``) and retries elsewhere;
* ``retry_storm`` (retries, backoff_ms, error_rate): the catalog fails ``error_rate`` of its
  requests (500) and the gateway retries every error ``retries`` times, ``backoff_ms`` apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dashboard.sources.model import LogRecord, Span, Trace
from tests.support.synthetic import (
    LOADGEN,
    MS,
    ROUTES,
    T0_NS,
    Fault,
    Scenario,
    _Connection,
    _prefill_cache,
    _Sim,
)

__all__ = ["CATALOG", "GATEWAY", "ORDERS", "Fault", "MicroScenario", "MicroWindow", "generate"]

GATEWAY, CATALOG, ORDERS = "narrows-gateway", "narrows-catalog", "narrows-orders"
PORTS = {CATALOG: 8101, ORDERS: 8201}

Handler = Callable[[str, int], tuple[int, bool]]


@dataclass(frozen=True)
class MicroScenario(Scenario):
    replicas: int = 3
    retries: int = 2
    backoff_ms: float = 25.0
    eject_after: int = 3
    order_shards: int = 2


@dataclass(frozen=True)
class MicroWindow:
    traces: list[Trace]
    #: The callers' log events inside the window (``upstream ejected``).
    logs: list[LogRecord]


class _MicroSim(_Sim):
    def __init__(self, sc: MicroScenario) -> None:
        super().__init__(sc)
        self.msc = sc
        self.where = (GATEWAY, "gateway-0")
        self.rr: dict[tuple[str, str], int] = {}
        self.ejected: dict[tuple[str, str], set[str]] = {}
        self.failures: dict[tuple[str, str, str], int] = {}
        self.logs: list[LogRecord] = []
        self.order_pools = [[_Connection() for _ in range(4)] for _ in range(sc.order_shards)]
        self.replica_ids = [f"catalog-{i}" for i in range(sc.replicas)]

    # --- spans of whichever process is running (self.where) ---------------------------------
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
        where: tuple[str, str] | None = None,
    ) -> str:
        service, instance = where or self.where
        resource = {"service.name": service}
        if instance:
            resource["service.instance.id"] = instance
        self.spans.append(
            Span(
                self.trace_id,
                sid,
                parent,
                service,
                name,
                kind,
                start,
                end,
                2 if error else 0,
                attrs,
                events or [],
                resource,
            )
        )
        return sid

    def net(self) -> int:
        return self.lognorm_ms(0.2, 0.3)

    # --- the balancer -------------------------------------------------------------------------
    def pick(self, callee: str, instances: list[str]) -> str:
        key = (self.where[0], callee)
        ejected = self.ejected.setdefault(key, set())
        healthy = [i for i in instances if i not in ejected] or instances
        k = self.rr.get(key, 0)
        self.rr[key] = k + 1
        return healthy[k % len(healthy)]

    def outcome(self, callee: str, instance: str, refused: bool, at: int) -> None:
        key = (self.where[0], callee, instance)
        if not refused:
            self.failures[key] = 0
            return
        self.failures[key] = n = self.failures.get(key, 0) + 1
        ejected = self.ejected.setdefault((self.where[0], callee), set())
        if n >= self.msc.eject_after and instance not in ejected:
            ejected.add(instance)
            self.logs.append(
                LogRecord(
                    time_ns=at,
                    service=self.where[0],
                    severity="WARN",
                    body="upstream ejected",
                    attributes={
                        "upstream.service": callee,
                        "upstream.instance": instance,
                        "reason": "connect_error",
                    },
                )
            )

    def _is(self, fault: str, t: int, callee: str, instance: str) -> Any:
        f = self.active(fault, t)
        if f is None or callee != CATALOG or instance != f"catalog-{int(f.get('instance', 0))}":
            return None
        return f

    # --- one call with retries ------------------------------------------------------------------
    def call(
        self, parent: str, t: int, callee: str, name: str, path: str, handler: Handler
    ) -> tuple[int, bool]:
        instances = self.replica_ids if callee == CATALOG else ["orders-0"]
        storm = self.active("retry_storm", t) if self.where[0] == GATEWAY else None
        retries = int(storm.get("retries", 5)) if storm else self.msc.retries
        backoff = float(storm.get("backoff_ms", 0.0)) if storm else self.msc.backoff_ms
        resend = 0
        while True:
            instance = self.pick(callee, instances)
            end, failed, retryable = self.attempt(
                parent, t, callee, instance, name, path, handler, resend
            )
            if not failed or resend >= retries or not (retryable or storm is not None):
                return end, failed
            resend += 1
            t = end + int(backoff * MS * 2 ** (resend - 1))

    def attempt(
        self,
        parent: str,
        t: int,
        callee: str,
        instance: str,
        name: str,
        path: str,
        handler: Handler,
        resend: int,
    ) -> tuple[int, bool, bool]:
        """One CLIENT span (and the callee's SERVER span); (end, failed, retryable)."""
        method, route = name.split(" ", 1)
        client = self.new_id()
        attrs: dict[str, Any] = {
            "http.request.method": method,
            "server.address": "127.0.0.1",
            "server.port": PORTS[callee],
            "url.full": f"http://127.0.0.1:{PORTS[callee]}{path}",
            "app.upstream.service": callee,
            "app.upstream.instance": instance,
        }
        if resend:
            attrs["http.request.resend_count"] = resend
        if self._is("replica_down", t, callee, instance) is not None:
            end = t + self.lognorm_ms(0.4, 0.3)  # connection refused
            self.add(
                client, parent, method, 3, t, end, {**attrs, "error.type": "ConnectError"}, True
            )
            self.outcome(callee, instance, True, end)
            return end, True, True
        caller = self.where
        server = self.new_id()
        start = t + self.net()
        self.where = (callee, instance)
        begin = start + self.lognorm_ms(0.1, 0.3)
        slow = self._is("slow_replica", t, callee, instance)
        if slow is not None and slow.get("where", "server") == "server":
            jitter = float(slow.get("jitter_ms", 0.0))
            delay = float(slow.get("delay_ms", 50.0)) + self.rng.uniform(-jitter, jitter)
            begin += int(max(0.0, delay) * MS)
        storm = self.active("retry_storm", t)
        if (
            storm is not None
            and callee == CATALOG
            and self.rng.random() < float(storm.get("error_rate", 0.2))
        ):
            done, failed = begin + self.lognorm_ms(0.3, 0.3), True
        else:
            done, failed = handler(server, begin)
        s_end = done + self.lognorm_ms(0.1, 0.3)
        status = 500 if failed else 200
        server_attrs: dict[str, Any] = {
            "http.request.method": method,
            "http.route": route,
            "url.path": path,
            "http.response.status_code": status,
        }
        if failed:
            server_attrs["error.type"] = str(status)
        self.add(server, client, name, 2, start, s_end, server_attrs, failed)
        self.where = caller
        end = s_end + self.net()
        attrs["http.response.status_code"] = status
        if failed:
            attrs["error.type"] = str(status)
        self.add(client, parent, method, 3, t, end, attrs, failed)
        self.outcome(callee, instance, False, end)
        return end, failed, status in (502, 503, 504)

    def work(self, t: int, shard: int, median: float) -> tuple[int, bool]:
        service, failed = super().work(t, shard, median)
        slow = self._is("slow_replica", t, *self.where)
        if slow is not None and slow.get("where", "server") == "queries":
            service += int(float(slow.get("delay_ms", 50.0)) * MS)
        return service, failed

    # --- what each service does ----------------------------------------------------------------
    def catalog_handler(self, route: str, t: int) -> tuple[str, Handler]:
        sc = self.sc
        if route in ("item", "put"):
            key = self.pick_key(t)
            if route == "item":
                return f"/items/{key}", lambda sid, at: self.get_item(sid, at, key)

            def put(sid: str, at: int) -> tuple[int, bool]:
                end, failed = self.query(sid, at, self.shard_of(key), "UPSERT", "items", 1.0)
                self.cache.pop(key, None)
                return self.loop_resume(end), failed

            return f"/items/{key}", put
        if route == "multi":
            keys = [self.pick_key(t) for _ in range(self.rng.randint(2, 6))]
            shards = sorted({self.shard_of(k) for k in keys})
            return "/items", lambda sid, at: self.fan_out(sid, at, shards, "SELECT", 1.2)

        def search(sid: str, at: int) -> tuple[int, bool]:
            end, failed = self.fan_out(sid, at, list(range(sc.shards)), "SELECT", 4.0)
            return end + self.lognorm_ms(0.5, 0.3), failed

        return "/search", search

    def orders(self, sid: str, t: int) -> tuple[int, bool]:
        """narrows-orders: reserve stock in the catalog, then write the order to its shard."""
        keys = list(dict.fromkeys(self.pick_key(t) for _ in range(self.rng.randint(1, 3))))
        t, failed = self.call(
            sid,
            t + self.lognorm_ms(0.2, 0.3),
            CATALOG,
            "POST /stock/reserve",
            "/stock/reserve",
            lambda s, at: self.checkout(s, at, keys),
        )
        if failed:
            return t, True
        shard = self.rng.randrange(self.msc.order_shards)
        work = self.lognorm_ms(1.2, 0.3)
        start, conn = min(
            ((c.earliest(t, work), c) for c in self.order_pools[shard]), key=lambda p: p[0]
        )
        conn.book(start, start + work)
        attrs = {
            "db.system.name": "sqlite",
            "db.namespace": f"orders_{shard}",
            "db.operation.name": "INSERT",
            "db.collection.name": "orders",
            "app.shard.id": str(shard),
            "app.pool.wait_ms": (start - t) / MS,
        }
        self.span(sid, "INSERT orders", 3, t, start + work, attrs)
        return start + work, False

    def request(self, arrival: int, route: str) -> Trace:
        self.trace_id = f"{self.rng.getrandbits(128):032x}"
        self.spans = []
        method, template = ROUTES[route]
        name = f"{method} {template}"
        client = self.new_id() if self.sc.client_spans else ""
        gateway = self.new_id()
        self.where = (GATEWAY, "gateway-0")
        start = arrival + 150_000
        t = start + self.lognorm_ms(0.2, 0.3)
        if route == "order":
            path = "/orders"
            t, failed = self.call(gateway, t, ORDERS, name, path, self.orders)
        else:
            path, handler = self.catalog_handler(route, t)
            t, failed = self.call(gateway, t, CATALOG, name, path, handler)
        end = t + self.lognorm_ms(0.15, 0.3)
        status = 502 if failed else 200
        attrs: dict[str, Any] = {
            "http.request.method": method,
            "http.route": template,
            "url.path": path,
            "url.scheme": "http",
            "http.response.status_code": status,
        }
        if failed:
            attrs["error.type"] = str(status)
        self.add(gateway, client, name, 2, start, end, attrs, failed)
        if client:
            self.add(
                client,
                "",
                method,
                3,
                arrival,
                end + 120_000,
                {"http.request.method": method, "http.response.status_code": status},
                failed,
                where=(LOADGEN, ""),
            )
        return Trace(self.trace_id, sorted(self.spans, key=lambda s: s.start_ns))


def generate(sc: MicroScenario) -> MicroWindow:
    """The window's traces (warm-up discarded) and the callers' log events in it."""
    sim = _MicroSim(sc)
    arrivals: list[tuple[int, str]] = []
    t = -sc.warmup_s
    names, weights = list(sc.weights), list(sc.weights.values())
    while True:
        t += sim.rng.expovariate(sc.rate_rps)
        if t >= sc.duration_s:
            break
        arrivals.append((T0_NS + int(t * 1e9), sim.rng.choices(names, weights)[0]))
    _prefill_cache(sim, T0_NS - int(sc.warmup_s * 1e9))
    traces = [sim.request(at, r) for at, r in arrivals]
    kept = [tr for (at, _), tr in zip(arrivals, traces, strict=True) if at >= T0_NS]
    return MicroWindow(kept, [r for r in sim.logs if r.time_ns >= T0_NS])
