"""Settings of one micro-topology service, read once from its command line and frozen.

The item store's own settings (shards, DSNs, cache, pool) stay in ``DemoSettings``; this is
what the split adds: which role, which replica, where the other services are, and how the
client side behaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from demo_app.exceptions import ConfigError
from demo_app.micro.balancer import STRATEGIES

__all__ = ["ROLES", "ServiceSettings", "parse_endpoints", "short_name"]

ROLES = ("gateway", "catalog", "orders")


def short_name(service: str) -> str:
    """``narrows-catalog`` → ``catalog`` (the prefix of ``service.instance.id``)."""
    return service.removeprefix("narrows-")


def parse_endpoints(values: Sequence[str], short: str) -> tuple[tuple[str, str], ...]:
    """``ID=URL`` or ``URL`` (comma-separated or repeated) → ((id, url), …); a bare URL is
    named ``<short>-<index>``, as the supervisor names the replicas' ``service.instance.id``."""
    out: list[tuple[str, str]] = []
    for value in values:
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, url = part.partition("=")
            if not sep:
                name, url = f"{short}-{len(out)}", part
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"--{short}: {part!r} is not ID=http://host:port or a URL")
            if not name.strip() or any(name == seen for seen, _ in out):
                raise ConfigError(f"--{short}: replica ids must be unique and non-empty ({part!r})")
            out.append((name.strip(), url.rstrip("/")))
    return tuple(out)


@dataclass(frozen=True)
class ServiceSettings:
    role: str
    service_name: str = ""
    #: this replica's index (catalog) — ``service.instance.id`` is ``<short>-<index>``
    instance: int = 0
    #: an explicit ``service.instance.id`` instead (compose replicas use their host name)
    instance_name: str = ""
    #: how many catalog replicas there are (catalog: to validate slow_replica's index)
    replicas: int = 1
    catalog: tuple[tuple[str, str], ...] = ()
    orders: tuple[tuple[str, str], ...] = ()
    strategy: str = "least_outstanding"
    #: one attempt of a read or write to the catalog (checkout calls get more)
    timeout_s: float = 2.0
    retries: int = 2
    #: where the gateway leaves replica_down's marker files for the supervisor
    control_dir: Path | None = None
    #: gateway: faults switched on at start (NAME or NAME:k=v,…)
    faults: tuple[str, ...] = ()
    #: gateway: the catalog's shard count until its health check says
    shards: int = 4
    seed_items: int = 10_000
    fault_seed: int = 1

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}, not {self.role!r}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"--balancer must be one of {', '.join(STRATEGIES)}")
        if not 0.05 <= self.timeout_s <= 60:
            raise ConfigError("--timeout must be 0.05 … 60 seconds")
        if not 0 <= self.retries <= 10:
            raise ConfigError("--retries must be 0 … 10")
        if not 0 <= self.instance < max(1, self.replicas):
            raise ConfigError(f"--instance-index must be 0 … {self.replicas - 1}")
        if self.role in ("gateway", "orders") and not self.catalog:
            raise ConfigError(f"the {self.role} needs --catalog (the catalog replicas' URLs)")
        if self.role == "gateway" and not self.orders:
            raise ConfigError("the gateway needs --orders (the orders service's URL)")

    @property
    def name(self) -> str:
        return self.service_name or f"narrows-{self.role}"

    @property
    def instance_id(self) -> str:
        return self.instance_name or f"{short_name(self.name)}-{self.instance}"
