"""``ChildSpec``: one process `narrows up` runs — how to start it, tell it is ready, and
whether it is restarted when it dies."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ChildSpec"]


@dataclass
class ChildSpec:
    """One child process: how to start it and how to tell it is ready."""

    name: str
    argv: list[str]
    health_url: str | None
    env: dict[str, str] = field(default_factory=dict)
    #: a replica: restarted (with backoff) when it exits after start-up, instead of
    #: stopping everything
    restart: bool = False
    #: while this file exists the replica is stopped and not restarted (replica_down)
    down_marker: Path | None = None
    #: for endpoints.json: service.name, service.instance.id and the base URL
    service: str = ""
    instance: str = ""
    url: str = ""
    #: lower tiers stop first: the load generator (0), the services and the dashboard (1),
    #: the collector (2) last, so what the others flush on the way out is still received
    stop_tier: int = 1
