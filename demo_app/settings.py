"""Demo service settings, read once (command line, with two ``NARROWS_*`` fallbacks) and frozen.

The shard DSNs and the Redis URL may carry passwords, so they can come from the environment
(``NARROWS_DEMO_SHARD_DSN``, ``NARROWS_DEMO_CACHE``) instead of the visible command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from demo_app.exceptions import ConfigError

__all__ = ["MAX_POOL_SIZE", "MAX_SHARDS", "DemoSettings", "env_defaults"]

MAX_SHARDS = 64
MAX_POOL_SIZE = 64


@dataclass(frozen=True)
class DemoSettings:
    data_dir: Path = Path(".narrows")
    seed_items: int = 10_000
    service_name: str = "narrows-demo"
    shards: int = 4
    #: empty: SQLite files under data_dir; one template with ``{i}``; or one DSN per shard
    shard_dsns: tuple[str, ...] = ()
    pool_size: int = 4
    pool_timeout_s: float = 10.0
    #: Round trip of a remote database, added to every query while it holds its connection.
    #: 0 by default: the SQLite shards are local files, so a query costs about a
    #: millisecond and a pool of one connection is rarely a bottleneck; a networked
    #: database (and HotROD's simulated MySQL) holds a connection far longer.
    db_latency_ms: float = 0.0
    #: ``memory``, ``none`` or a Redis URL
    cache: str = "memory"
    cache_ttl_s: float = 60.0
    cache_max_items: int = 10_000
    #: ``NAME`` or ``NAME:key=value,…`` switched on at start
    faults: tuple[str, ...] = ()
    fault_seed: int = 1

    def __post_init__(self) -> None:
        checks = [
            (1 <= self.shards <= MAX_SHARDS, f"--shards must be 1 … {MAX_SHARDS}"),
            (0 <= self.seed_items <= 10_000_000, "--seed-items must be 0 … 10000000"),
            (1 <= self.pool_size <= MAX_POOL_SIZE, f"--pool-size must be 1 … {MAX_POOL_SIZE}"),
            (0.01 <= self.pool_timeout_s <= 600, "--pool-timeout must be 0.01 … 600 seconds"),
            (0 <= self.db_latency_ms <= 10_000, "--db-latency-ms must be 0 … 10000"),
            (0.001 <= self.cache_ttl_s <= 86_400, "--cache-ttl must be 0.001 … 86400 seconds"),
            (1 <= self.cache_max_items <= 10_000_000, "cache_max_items must be 1 … 10000000"),
            (
                self.cache in ("memory", "none")
                or self.cache.startswith(("redis://", "rediss://", "unix://")),
                f"--cache must be memory, none or a redis:// URL, not {self.cache!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        self.expanded_dsns()

    def expanded_dsns(self) -> list[str]:
        """One DSN per shard: a ``{i}`` template is filled in; a list must match --shards."""
        dsns = self.shard_dsns
        if not dsns:
            return []
        for dsn in dsns:
            if not dsn.startswith(("postgresql://", "postgres://")) and "dbname=" not in dsn:
                raise ConfigError(
                    "--shard-dsn must be a PostgreSQL URL (postgresql://…) or key=value DSN"
                )
        if len(dsns) == 1 and "{i}" in dsns[0]:
            return [dsns[0].replace("{i}", str(i)) for i in range(self.shards)]
        if len(dsns) != self.shards:
            raise ConfigError(
                f"--shard-dsn: {len(dsns)} DSN(s) for {self.shards} shards; give one per shard "
                "or one template containing {i}"
            )
        if len(set(dsns)) != len(dsns):
            raise ConfigError("--shard-dsn: every shard needs its own database")
        return list(dsns)

    @property
    def backend(self) -> str:
        return "postgresql" if self.shard_dsns else "sqlite"


def env_defaults(environ: Mapping[str, str] = os.environ) -> dict[str, object]:
    """Defaults the command line may override (empty values mean unset)."""
    out: dict[str, object] = {}
    dsn = environ.get("NARROWS_DEMO_SHARD_DSN", "").strip()
    if dsn:
        out["shard_dsns"] = tuple(dsn.split())
    cache = environ.get("NARROWS_DEMO_CACHE", "").strip()
    if cache:
        out["cache"] = cache
    return out
