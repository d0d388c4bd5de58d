"""`narrows collector`: run the receivers, the DuckDB store and the query API."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".narrows"),
        help="directory of the DuckDB file and the write-ahead log (default .narrows/)",
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
    parser.add_argument(
        "--scrape",
        action="append",
        default=[],
        metavar="URL[,INTERVAL]",
        help="scrape a Prometheus /metrics target every INTERVAL (default 15s); repeatable",
    )
    parser.add_argument(
        "--retention",
        help="delete data older than this since arrival, e.g. 24h, 7d; 0 keeps everything "
        "(default NARROWS_RETENTION or 24h)",
    )
    parser.add_argument(
        "--max-size",
        help="delete the oldest data when the store passes this size, e.g. 2GB; 0 = no limit "
        "(default NARROWS_MAX_SIZE or 2GB)",
    )


def run(args: argparse.Namespace) -> int:
    import logging

    from collector.app import serve
    from collector.receivers.scrape import parse_target
    from collector.settings import CollectorSettings, parse_age, parse_size

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        for target in args.scrape:
            parse_target(target)
        retention = parse_age(args.retention) if args.retention else None
        max_size = parse_size(args.max_size) if args.max_size else None
    except ValueError as exc:
        print(f"narrows collector: {exc}", file=sys.stderr)
        return 2
    settings = CollectorSettings.from_env(
        data_dir=args.data_dir,
        listen=args.listen,
        otlp_port=args.otlp_port,
        zipkin_port=args.zipkin_port,
        query_port=args.query_port,
        scrape=tuple(args.scrape),
        retention_ns=retention,
        max_size=max_size,
    )
    taken = _taken_port(
        settings.listen,
        {
            "--otlp-port": settings.otlp_port,
            "--zipkin-port": settings.zipkin_port,
            "--query-port": settings.query_port,
        },
    )
    if taken:
        print(f"narrows collector: {taken}", file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(settings))
    except OSError as exc:
        print(f"narrows collector: {exc}", file=sys.stderr)
        return 1
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (about a third less CPU per request)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _taken_port(host: str, ports: dict[str, int]) -> str | None:
    """A one-line reason when a port cannot be bound, instead of uvicorn's traceback."""
    import socket

    for flag, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                return (
                    f"cannot listen on {host}:{port} ({exc.strerror}); choose another with {flag}"
                )
    return None
