"""`narrows demo`: serve the sharded, cached demo service with uvicorn."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from demo_app.settings import DemoSettings

__all__ = ["add_arguments", "add_store_arguments", "run", "store_settings"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--demo-port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--listen", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add_store_arguments(parser)


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """The item store's options (shared with `narrows service catalog|orders`)."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".narrows"),
        help="where the SQLite shard files live (default .narrows/)",
    )
    parser.add_argument(
        "--seed-items",
        type=int,
        default=10_000,
        help="items created when a shard is first made (default 10000)",
    )
    parser.add_argument("--shards", type=int, default=4, help="number of shards (default 4)")
    parser.add_argument(
        "--shard-dsn",
        action="append",
        default=None,
        metavar="DSN",
        help="PostgreSQL shards: one DSN template with {i} "
        "(postgresql://…/narrows_shard_{i}), or the option once per shard; "
        "default: SQLite files in the data dir (env NARROWS_DEMO_SHARD_DSN)",
    )
    parser.add_argument(
        "--pool-size", type=int, default=4, help="connections per shard (default 4)"
    )
    parser.add_argument(
        "--pool-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for a shard connection before answering 503 (default 10)",
    )
    parser.add_argument(
        "--db-latency-ms",
        type=float,
        default=0.0,
        help="round trip of a remote database, added to every shard query while it holds "
        "its connection (default 0: the SQLite shards are local)",
    )
    parser.add_argument(
        "--cache",
        default=None,
        help="memory (default), none, or a Redis URL redis://host:port/db (env NARROWS_DEMO_CACHE)",
    )
    parser.add_argument(
        "--cache-ttl", type=float, default=60.0, help="cache entry TTL in seconds (default 60)"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME[:k=v,…]",
        help="switch a fault on at start, e.g. slow_shard:shard=2,delay_ms=50 (repeatable)",
    )
    parser.add_argument(
        "--fault-seed", type=int, default=1, help="seed of the faults' randomness (default 1)"
    )


def store_settings(args: argparse.Namespace) -> DemoSettings:
    """DemoSettings from the store options (ConfigError names a bad one)."""
    from demo_app.settings import DemoSettings, env_defaults

    env = env_defaults()
    return DemoSettings(
        data_dir=args.data_dir,
        seed_items=args.seed_items,
        shards=args.shards,
        shard_dsns=tuple(args.shard_dsn) if args.shard_dsn else env.get("shard_dsns", ()),  # type: ignore[arg-type]
        pool_size=args.pool_size,
        pool_timeout_s=args.pool_timeout,
        db_latency_ms=args.db_latency_ms,
        cache=args.cache or str(env.get("cache", "memory")),
        cache_ttl_s=args.cache_ttl,
        faults=tuple(args.fault),
        fault_seed=args.fault_seed,
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from demo_app.exceptions import ConfigError, FaultError
    from demo_app.main import create_app

    try:
        settings = store_settings(args)
        app = create_app(settings)
    except (ConfigError, FaultError) as exc:
        print(f"narrows demo: {exc}", file=sys.stderr)
        return 2
    # log_config=None: uvicorn's own handlers would print tracebacks and request lines as
    # plain, unredacted text; without them its loggers go through the instrumentation's.
    uvicorn.run(app, host=args.listen, port=args.demo_port, log_level="warning", log_config=None)
    return 0
