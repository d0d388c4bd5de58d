"""The gateway's fault switches reach the processes that simulate them.

The gateway holds the one list an operator sees and changes (``/admin/faults``); each fault
takes effect where its defect lives:

    gateway            cpu_burn, hot_keys, retry_storm (its retry policy)
    catalog replicas   slow_shard, failing_shard, pool_size, cache_outage, cache_ttl,
                       sequential_fanout, slow_replica, retry_storm (the hiccups)
    supervisor         replica_down: a marker file ``<control-dir>/down/<instance id>``;
                       `narrows up` stops that replica and restarts it once the file is gone

Catalog replicas are reconciled, not just told once: after every change, and after every
health check of a replica that restarted (its ``boot`` changed) or missed a change, the
gateway compares the replica's list with its own and sets or clears the difference. So a
replica that was down when a fault was switched, or restarted since, catches up.

The calls carry no trace context and leave no span (they would name the fault).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from demo_app.faults import Faults, Value
from demo_app.micro.balancer import Endpoint
from demo_app.micro.upstream import Upstream, no_http_instrumentation

__all__ = ["CATALOG_FAULTS", "FaultSync"]

CATALOG_FAULTS = frozenset(
    (
        "slow_shard",
        "failing_shard",
        "pool_size",
        "cache_outage",
        "cache_ttl",
        "sequential_fanout",
        "slow_replica",
        "retry_storm",
    )
)
_log = logging.getLogger("demo_app.admin")
_TIMEOUT_S = 2.0


class FaultSync:
    def __init__(self, faults: Faults, catalog: Upstream, control_dir: Path | None) -> None:
        self._faults = faults
        self._catalog = catalog
        self._control = control_dir
        self._epoch = 0
        self._synced: dict[str, int] = {}
        self._boots: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def desired(self) -> dict[str, dict[str, Value]]:
        return {n: p for n, p in self._faults.active().items() if n in CATALOG_FAULTS}

    async def changed(self) -> None:
        """After an operator's change: markers now, replicas within a bound (the rest catch
        up on their next health check)."""
        self._epoch += 1
        self.write_markers()
        endpoints = self._catalog.balancer.endpoints
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_TIMEOUT_S + 0.5):
                await asyncio.gather(*(self.reconcile(e) for e in endpoints))

    def write_markers(self) -> None:
        """replica_down's desired state, as files the supervisor watches."""
        if self._control is None:
            return
        down = self._control / "down"
        down.mkdir(parents=True, exist_ok=True)
        index = self._faults.replica_down()
        endpoints = self._catalog.balancer.endpoints
        wanted = {endpoints[index].instance} if index is not None else set()
        for marker in down.iterdir():
            if marker.name not in wanted:
                marker.unlink(missing_ok=True)
        for name in wanted:
            (down / name).touch()

    async def on_healthy(self, endpoint: Endpoint, health: Mapping[str, Any]) -> None:
        """Health-check hook: reconcile a replica that restarted or missed a change."""
        boot = str(health.get("boot", ""))
        if boot and self._boots.get(endpoint.instance) != boot:
            self._boots[endpoint.instance] = boot
            self._synced.pop(endpoint.instance, None)
        if self._synced.get(endpoint.instance) != self._epoch:
            await self.reconcile(endpoint)

    async def reconcile(self, endpoint: Endpoint) -> bool:
        lock = self._locks.setdefault(endpoint.instance, asyncio.Lock())
        async with lock:
            epoch = self._epoch
            try:
                await self._reconcile(endpoint)
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                # Only the type: an httpx message carries the URL, which names the switch.
                _log.debug("switches not synced to %s yet: %s", endpoint.instance, type(exc))
                return False
            self._synced[endpoint.instance] = epoch
            return True

    async def _reconcile(self, endpoint: Endpoint) -> None:
        client = self._catalog.client
        base = f"{endpoint.url}/admin/faults"
        with no_http_instrumentation():
            listing = await client.get(base, timeout=_TIMEOUT_S)
            listing.raise_for_status()
            actual = {f["name"]: f["params"] for f in listing.json()["faults"] if f["active"]}
            desired = self.desired()
            for name in sorted(CATALOG_FAULTS):
                want, have = desired.get(name), actual.get(name)
                if want == have:
                    continue
                url = f"{base}/{quote(name, safe='')}"
                if want is None:
                    answer = await client.delete(url, timeout=_TIMEOUT_S)
                else:
                    answer = await client.put(url, json=want, timeout=_TIMEOUT_S)
                if answer.status_code >= 400:
                    _log.warning(
                        "%s refused a switch change (%d)", endpoint.instance, answer.status_code
                    )
