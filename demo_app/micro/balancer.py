"""Which replica gets the next call, and which replicas are out of rotation.

* Picking: least outstanding requests (the replica with the fewest calls in flight; ties
  taken in turn), or plain round robin. A retry avoids the replicas this call already tried
  while others are left.
* Passive ejection: ``eject_after`` connection failures in a row (refused, reset — the
  replica is not there) take a replica out at once, without waiting for a health check.
  Timeouts and 5xx answers do not: every replica shares the shards, so a slow or failing
  shard would otherwise empty the whole pool.
* Active health checks: ``unhealthy_after`` failed checks in a row eject, ``healthy_after``
  good ones readmit (this is how an ejected replica comes back). A replica not yet seen
  (``seen=False``: the process may still be starting) is admitted by its first good check
  and is never "ejected" before that.
* Panic mode: when every replica is out, calls go to all of them rather than to none.

Pure state: the caller (upstream.py) does the I/O and turns the returned ``Transition``
into the log line and the metrics.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["STRATEGIES", "Balancer", "Endpoint", "Transition"]

STRATEGIES = ("least_outstanding", "round_robin")


@dataclass(eq=False)
class Endpoint:
    """One replica: its id (``service.instance.id``), base URL and the balancer's view of it."""

    instance: str
    url: str
    outstanding: int = 0
    healthy: bool = True
    seen: bool = True
    connect_failures: int = 0
    check_failures: int = 0
    check_successes: int = 0


@dataclass(frozen=True)
class Transition:
    kind: Literal["admitted", "ejected", "readmitted"]
    endpoint: Endpoint
    reason: str


class Balancer:
    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        *,
        strategy: str = "least_outstanding",
        eject_after: int = 3,
        unhealthy_after: int = 2,
        healthy_after: int = 2,
    ) -> None:
        if not endpoints:
            raise ValueError("a balancer needs at least one endpoint")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
        if min(eject_after, unhealthy_after, healthy_after) < 1:
            raise ValueError("eject_after, unhealthy_after and healthy_after must be >= 1")
        self.endpoints = list(endpoints)
        self.strategy = strategy
        self._eject_after = eject_after
        self._unhealthy_after = unhealthy_after
        self._healthy_after = healthy_after
        self._turn = 0

    def pick(self, tried: Collection[Endpoint] = ()) -> Endpoint:
        """The endpoint for the next attempt (never raises: panic mode uses any)."""
        healthy = [e for e in self.endpoints if e.healthy]
        fresh = [e for e in healthy if e not in tried]
        candidates = (
            fresh or healthy or [e for e in self.endpoints if e not in tried] or self.endpoints
        )
        self._turn += 1
        if self.strategy == "least_outstanding":
            least = min(e.outstanding for e in candidates)
            candidates = [e for e in candidates if e.outstanding == least]
        return candidates[self._turn % len(candidates)]

    @property
    def healthy_count(self) -> int:
        return sum(e.healthy for e in self.endpoints)

    def on_attempt(self, endpoint: Endpoint, *, connection_failed: bool) -> Transition | None:
        """Passive: the outcome of one call to ``endpoint``."""
        if not connection_failed:
            endpoint.connect_failures = 0
            return None
        endpoint.connect_failures += 1
        if endpoint.seen and endpoint.healthy and endpoint.connect_failures >= self._eject_after:
            return self._eject(endpoint, f"{endpoint.connect_failures} connection failures")
        return None

    def on_check(self, endpoint: Endpoint, ok: bool) -> Transition | None:
        """Active: the result of one health check of ``endpoint``."""
        if ok:
            endpoint.check_failures = 0
            endpoint.check_successes += 1
            if not endpoint.seen:
                endpoint.seen = endpoint.healthy = True
                return Transition("admitted", endpoint, "first health check passed")
            if not endpoint.healthy and endpoint.check_successes >= self._healthy_after:
                endpoint.healthy = True
                endpoint.connect_failures = 0
                return Transition("readmitted", endpoint, "health checks pass")
            return None
        endpoint.check_successes = 0
        endpoint.check_failures += 1
        if endpoint.seen and endpoint.healthy and endpoint.check_failures >= self._unhealthy_after:
            return self._eject(endpoint, f"{endpoint.check_failures} failed health checks")
        return None

    def _eject(self, endpoint: Endpoint, reason: str) -> Transition:
        endpoint.healthy = False
        endpoint.check_successes = 0
        return Transition("ejected", endpoint, reason)
