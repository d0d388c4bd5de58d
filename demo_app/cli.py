"""`narrows demo`: serve the demo app with uvicorn."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".narrows"),
        help="where the shard files live (default .narrows/)",
    )
    parser.add_argument("--demo-port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--listen", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--seed-items",
        type=int,
        default=10_000,
        help="items created on first start (default 10000)",
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from demo_app.main import create_app
    from demo_app.settings import DemoSettings

    app = create_app(DemoSettings(data_dir=args.data_dir, seed_items=args.seed_items))
    uvicorn.run(app, host=args.listen, port=args.demo_port, log_level="warning")
    return 0
