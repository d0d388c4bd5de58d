"""`narrows collector`: run the receivers, the DuckDB store and the query API."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".narrows"),
        help="directory of the DuckDB file (default .narrows/)",
    )
    parser.add_argument("--otlp-port", type=int, default=4318, help="OTLP/HTTP port (default 4318)")
    parser.add_argument(
        "--zipkin-port", type=int, default=9411, help="Zipkin v2 JSON port (default 9411)"
    )
    parser.add_argument(
        "--query-port",
        type=int,
        default=16686,
        help="query API port: Jaeger API v3 and Narrows aggregates (default 16686)",
    )
    parser.add_argument(
        "--listen", default="127.0.0.1", help="address every server binds (default 127.0.0.1)"
    )


def run(args: argparse.Namespace) -> int:
    import logging

    from collector.app import serve
    from collector.settings import CollectorSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = CollectorSettings.from_env(
        data_dir=args.data_dir,
        listen=args.listen,
        otlp_port=args.otlp_port,
        zipkin_port=args.zipkin_port,
        query_port=args.query_port,
    )
    try:
        asyncio.run(serve(settings))
    except OSError as exc:
        print(f"narrows collector: {exc}", file=sys.stderr)
        return 1
    return 0
