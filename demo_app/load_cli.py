"""`narrows load`: closed-loop concurrency steps or open-loop arrivals against the demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from demo_app.load import LoadConfig

__all__ = ["add_arguments", "config_from_args", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="http://127.0.0.1:8000", help="demo base URL")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--concurrency",
        help="closed loop: comma-separated steps of concurrent clients, e.g. 1,2,4,8,16",
    )
    mode.add_argument(
        "--rate",
        help="open loop: requests/s with Poisson arrivals; a list (50,100,200) runs steps "
        "(default 5)",
    )
    parser.add_argument(
        "--step-seconds", type=float, default=20.0, help="length of each step (default 20)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="overall time bound in seconds; with one --rate it is the run's length "
        "(default 30; 0 runs until stopped)",
    )
    parser.add_argument(
        "--requests", type=int, default=0, help="stop after this many requests (0: no bound)"
    )
    parser.add_argument(
        "--mix",
        default="get=60,multiget=15,search=10,put=10,checkout=5",
        help="endpoint weights (default get=60,multiget=15,search=10,put=10,checkout=5)",
    )
    parser.add_argument(
        "--keys", default="uniform", help="uniform (default) or zipf:S, e.g. zipf:1.2"
    )
    parser.add_argument("--max-id", type=int, default=10_000, help="largest item id requested")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout (s)")
    parser.add_argument(
        "--max-inflight", type=int, default=1000, help="open loop: most requests in flight"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--tenants",
        type=int,
        default=3,
        help="requests carry baggage app.tenant=tenant-1 … tenant-N (default 3; 0: none)",
    )
    parser.add_argument(
        "--progress", type=float, default=5.0, help="seconds between progress lines (0: none)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def _numbers(text: str, kind: type, flag: str) -> tuple[float, ...]:
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{flag} must be comma-separated numbers, got {text!r}") from None
    if not values or any(not 0 < v < 1e7 for v in values):
        raise ValueError(f"{flag} values must be positive, got {text!r}")
    return values


def config_from_args(args: argparse.Namespace) -> LoadConfig:
    """A LoadConfig, or ValueError naming the flag that is wrong."""
    from demo_app.load import LoadConfig
    from demo_app.load_plan import parse_keys, parse_mix

    concurrency = (
        tuple(int(c) for c in _numbers(args.concurrency, int, "--concurrency"))
        if args.concurrency
        else ()
    )
    if any(c > 10_000 for c in concurrency):
        raise ValueError("--concurrency steps must be ≤ 10000")
    rates = _numbers(args.rate, float, "--rate") if args.rate else ()
    duration = args.duration
    if duration is None:
        duration = 30.0 if not concurrency and len(rates) <= 1 else 0.0
    checks = [
        (args.step_seconds > 0, "--step-seconds must be positive"),
        (duration >= 0, "--duration must be ≥ 0"),
        (args.requests >= 0, "--requests must be ≥ 0"),
        (1 <= args.max_id <= 2**31 - 1, "--max-id must be 1 … 2147483647"),
        (args.timeout > 0, "--timeout must be positive"),
        (args.max_inflight >= 1, "--max-inflight must be ≥ 1"),
        (args.progress >= 0, "--progress must be ≥ 0"),
        (0 <= args.tenants <= 1000, "--tenants must be 0 … 1000"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    parse_keys(args.keys)
    return LoadConfig(
        target=args.target.rstrip("/"),
        concurrency=concurrency,
        rates=rates,
        step_seconds=args.step_seconds,
        duration_s=duration,
        max_requests=args.requests,
        mix=parse_mix(args.mix),
        keys=args.keys,
        max_id=args.max_id,
        timeout_s=args.timeout,
        max_inflight=args.max_inflight,
        seed=args.seed,
        progress_s=args.progress,
        tenants=args.tenants,
    )


def run(args: argparse.Namespace) -> int:
    import httpx

    from demo_app.load import LoadGenerator
    from demo_app.load_stats import render_table
    from instrumentation import configure

    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"narrows load: {exc}", file=sys.stderr)
        return 2
    # stdout carries the results (--json); the JSON log lines go to stderr.
    telemetry = configure(service_name="narrows-load", log_stream="stderr")

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    async def main() -> int:
        generator = LoadGenerator(config, progress=progress)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, generator.stop)
        try:
            report = await generator.run()
        except httpx.HTTPError as exc:
            print(f"narrows load: demo unreachable at {config.target}: {exc}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(report.to_dict(), indent=2))
        else:
            print(render_table(report))
        return 0

    try:
        return asyncio.run(main())
    finally:
        telemetry.shutdown(timeout_s=5.0)
