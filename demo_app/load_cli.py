"""`narrows load`: a steady request loop against the demo (the real generator comes later)."""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="http://127.0.0.1:8000", help="demo base URL")
    parser.add_argument("--rate", type=float, default=5.0, help="requests per second (default 5)")
    parser.add_argument(
        "--duration",
        type=float,
        default=30.0,
        help="seconds to run; 0 runs until stopped (default 30)",
    )
    parser.add_argument("--max-id", type=int, default=10_000, help="largest item id requested")


def run(args: argparse.Namespace) -> int:
    import httpx

    if args.rate <= 0:
        print("narrows load: --rate must be positive", file=sys.stderr)
        return 2
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    rng = random.Random(1)
    sent = errors = 0
    start = time.monotonic()
    with httpx.Client(base_url=args.target, timeout=5.0) as client:
        while not stop and (args.duration == 0 or time.monotonic() - start < args.duration):
            try:
                resp = client.get(f"/items/{rng.randint(1, args.max_id)}")
                errors += resp.status_code >= 500
            except httpx.HTTPError:
                errors += 1
            sent += 1
            if sent % 100 == 0:
                print(f"narrows load: {sent} requests, {errors} errors", flush=True)
            time.sleep(1.0 / args.rate)
    print(f"narrows load: done, {sent} requests, {errors} errors", flush=True)
    return 0
