"""The processes of `narrows up --topology micro`: gateway, orders and catalog replicas.

    gateway   :demo-port (8000)     the public API — the load and `narrows fault` talk to it
    orders-J  free port             checkout; calls the catalog replicas
    catalog-I free port             the item store; replicas share the shard files/databases

Every service gets ``OTEL_SERVICE_NAME`` and ``service.instance.id`` (``catalog-1`` …) in
``OTEL_RESOURCE_ATTRIBUTES``; the collector scrapes each one's ``/metrics``. Catalog and
orders replicas are restarted when they die (a replica is cattle); while the gateway's
replica_down marker ``<data-dir>/run/down/<instance>`` exists, that replica is stopped.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from narrows.children import ChildSpec
from narrows.ports import free_port

__all__ = ["MAX_REPLICAS", "MicroPlan", "parse_replicas"]

MAX_REPLICAS = 16
SERVICES = {"catalog": "narrows-catalog", "orders": "narrows-orders", "gateway": "narrows-gateway"}


def parse_replicas(text: str) -> dict[str, int]:
    """``catalog=3[,orders=2]`` → ``{"catalog": 3, "orders": 2}`` (argparse ``type=``)."""
    counts = {"catalog": 1, "orders": 1}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in counts or not value.strip().isdigit():
            raise argparse.ArgumentTypeError(
                f"{part!r}: expected catalog=N or orders=N (e.g. catalog=3,orders=2)"
            )
        n = int(value)
        if not 1 <= n <= MAX_REPLICAS:
            raise argparse.ArgumentTypeError(f"{name}={n}: replicas must be 1 … {MAX_REPLICAS}")
        counts[name] = n
    return counts


def _resource_env(instance: str) -> str:
    """OTEL_RESOURCE_ATTRIBUTES with this replica's id added to what the user set."""
    mine = f"service.instance.id={instance}"
    theirs = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").strip()
    kept = [a for a in theirs.split(",") if a.strip() and not a.startswith("service.instance.id")]
    return ",".join([*kept, mine])


class MicroPlan:
    """The micro topology's children for one `narrows up` run."""

    def __init__(
        self,
        args: argparse.Namespace,
        data_dir: Path,
        *,
        gateway_port: int,
        common_env: Mapping[str, str],
        store_options: list[str],
        counts: Mapping[str, int] | None = None,
        ports: Mapping[str, int] | None = None,
    ) -> None:
        self.args = args
        self.data_dir = data_dir
        self.counts = dict(counts or getattr(args, "replicas", None) or parse_replicas(""))
        self.gateway_port = gateway_port
        self.common_env = dict(common_env)
        self.store_options = store_options
        taken = {gateway_port}
        chosen: dict[str, int] = dict(ports or {})
        for name in self.instances("catalog") + self.instances("orders"):
            if name not in chosen:
                chosen[name] = free_port(avoid=taken | set(chosen.values()))
        self.ports = chosen
        self.control_dir = data_dir / "run"

    def instances(self, short: str) -> list[str]:
        return [f"{short}-{i}" for i in range(self.counts[short])]

    def url(self, instance: str) -> str:
        port = self.gateway_port if instance == "gateway-0" else self.ports[instance]
        return f"http://127.0.0.1:{port}"

    def _endpoints(self, short: str) -> str:
        return ",".join(f"{i}={self.url(i)}" for i in self.instances(short))

    def _env(self, short: str, instance: str) -> dict[str, str]:
        return {
            **self.common_env,
            "OTEL_SERVICE_NAME": SERVICES[short],
            "OTEL_RESOURCE_ATTRIBUTES": _resource_env(instance),
        }

    def _service(self, short: str, index: int, *options: str) -> ChildSpec:
        instance = f"{short}-{index}"
        is_gateway = short == "gateway"
        url = self.url(instance)
        port = str(self.gateway_port if is_gateway else self.ports[instance])
        return ChildSpec(
            "gateway" if is_gateway else instance,
            [
                *_narrows(),
                "service",
                short,
                "--port",
                port,
                "--data-dir",
                str(self.data_dir),
                "--instance-index",
                str(index),
                *options,
            ],
            f"{url}/healthz",
            env=self._env(short, instance),
            restart=not is_gateway,
            down_marker=self.control_dir / "down" / instance if short == "catalog" else None,
            service=SERVICES[short],
            instance=instance,
            url=url,
        )

    def children(self) -> list[ChildSpec]:
        """Catalog replicas, orders, then the gateway (it waits for both to be healthy)."""
        catalog_n = self.counts["catalog"]
        out = [
            self._service("catalog", i, "--replicas", str(catalog_n), *self.store_options)
            for i in range(catalog_n)
        ]
        orders_options = ["--catalog", self._endpoints("catalog"), *self._orders_store()]
        out += [
            self._service("orders", j, "--replicas", str(self.counts["orders"]), *orders_options)
            for j in range(self.counts["orders"])
        ]
        faults = [opt for f in getattr(self.args, "fault", None) or [] for opt in ("--fault", f)]
        shards = getattr(self.args, "shards", None)
        out.append(
            self._service(
                "gateway",
                0,
                "--catalog",
                self._endpoints("catalog"),
                "--orders",
                self._endpoints("orders"),
                "--control-dir",
                str(self.control_dir),
                *(["--shards", str(shards)] if shards is not None else []),
                *faults,
            )
        )
        return out

    def _orders_store(self) -> list[str]:
        """The orders service's own shards: same count; SQLite files of its own, or
        PostgreSQL databases of its own (``--orders-shard-dsn``, else the catalog's template
        with ``orders_`` before ``{i}``)."""
        out: list[str] = []
        shards = getattr(self.args, "shards", None)
        if shards is not None:
            out += ["--shards", str(shards)]
        dsns = getattr(self.args, "orders_shard_dsn", None) or []
        if not dsns:
            catalog = getattr(self.args, "shard_dsn", None) or []
            if len(catalog) == 1 and "{i}" in catalog[0]:
                dsns = [catalog[0].replace("{i}", "orders_{i}")]
            elif catalog:
                raise ValueError(
                    "--shard-dsn lists one DSN per shard: give the orders service's with "
                    "--orders-shard-dsn"
                )
        for dsn in dsns:
            out += ["--shard-dsn", dsn]
        return out

    def scrape_urls(self) -> list[str]:
        names = ["gateway-0", *self.instances("orders"), *self.instances("catalog")]
        return [f"{self.url(n)}/metrics" for n in names]


def _narrows() -> list[str]:
    import sys

    return [sys.executable, "-m", "narrows"]
