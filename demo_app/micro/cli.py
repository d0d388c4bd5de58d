"""`narrows service gateway|catalog|orders`: one process of the micro topology, with uvicorn.

`narrows up --topology micro` starts them with the right flags; by hand, e.g.:

    narrows service catalog --port 8101 --instance-index 0 --replicas 1
    narrows service orders  --port 8201 --catalog http://127.0.0.1:8101
    narrows service gateway --port 8000 --catalog http://127.0.0.1:8101 \\
                            --orders http://127.0.0.1:8201
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from demo_app.cli import add_store_arguments

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("role", choices=["gateway", "catalog", "orders"], help="which service")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--listen", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--service-name", help="service.name (default narrows-ROLE; OTEL_SERVICE_NAME is ignored)"
    )
    add_store_arguments(parser)
    micro = parser.add_argument_group("micro topology")
    micro.add_argument(
        "--instance-index",
        type=int,
        default=None,
        help="this replica's index: service.instance.id ROLE-INDEX (default: ROLE-HOSTNAME, "
        "index 0 — how compose replicas tell themselves apart)",
    )
    micro.add_argument("--replicas", type=int, default=1, help="catalog: how many replicas run")
    micro.add_argument(
        "--catalog",
        action="append",
        default=[],
        metavar="[ID=]URL",
        help="gateway, orders: a catalog replica (repeatable or comma-separated)",
    )
    micro.add_argument(
        "--orders",
        action="append",
        default=[],
        metavar="[ID=]URL",
        help="gateway: an orders replica (repeatable or comma-separated)",
    )
    micro.add_argument(
        "--balancer",
        choices=["least_outstanding", "round_robin"],
        default="least_outstanding",
        help="how replicas are picked (default least_outstanding)",
    )
    micro.add_argument(
        "--timeout",
        type=float,
        default=2.0,
        help="seconds per attempt of a catalog call; a whole call gets twice that (default 2)",
    )
    micro.add_argument(
        "--retries", type=int, default=2, help="retries of a failed call, when safe (default 2)"
    )
    micro.add_argument(
        "--control-dir",
        type=Path,
        help="gateway: where replica_down leaves its marker for `narrows up`",
    )


def run(args: argparse.Namespace) -> int:
    import socket

    import uvicorn
    from fastapi import FastAPI

    from demo_app.cli import store_settings
    from demo_app.exceptions import ConfigError, FaultError
    from demo_app.micro.settings import ServiceSettings, parse_endpoints

    try:
        me = ServiceSettings(
            role=args.role,
            service_name=args.service_name or "",
            instance=args.instance_index or 0,
            instance_name=""
            if args.instance_index is not None
            else f"{args.role}-{socket.gethostname()}",
            replicas=args.replicas,
            catalog=parse_endpoints(args.catalog, "catalog"),
            orders=parse_endpoints(args.orders, "orders"),
            strategy=args.balancer,
            timeout_s=args.timeout,
            retries=args.retries,
            control_dir=args.control_dir,
            faults=tuple(args.fault) if args.role == "gateway" else (),
            shards=args.shards,
            seed_items=args.seed_items,
            fault_seed=args.fault_seed,
        )
        app: FastAPI
        if me.role == "gateway":
            from demo_app.micro.gateway_app import create_gateway_app

            app = create_gateway_app(me)
        elif me.role == "catalog":
            from demo_app.micro.catalog_app import create_catalog_app

            app = create_catalog_app(store_settings(args), me)
        else:
            from demo_app.micro.orders_app import create_orders_app

            app = create_orders_app(store_settings(args), me)
    except (ConfigError, FaultError) as exc:
        print(f"narrows service {args.role}: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host=args.listen,
        port=args.port,
        log_level="warning",
        log_config=None,  # uvicorn's handlers would print tracebacks unredacted (see demo)
        timeout_graceful_shutdown=3,
    )
    return 0
