"""`narrows capacity`: a closed-loop load sweep, the Universal Scalability Law fitted to it,
and the replicas a target rate needs within a latency SLO.

The sweep runs the load generator of `narrows load` in this process against a running demo
(``--demo-url``, or the ``endpoints.json`` of a `narrows up` in ``--data-dir``), one step per
concurrency, with a progress line per step on stderr; or it is read back from a file an
earlier run saved (``--from``). The figures come from ``dashboard.analysis.capacity``, the
same functions as the dashboard's Capacity page, and the fit's error is printed next to it.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from narrows.endpoints import add_data_dir_argument

if TYPE_CHECKING:
    import pandas as pd

    from demo_app.load import LoadConfig
    from demo_app.load_stats import LoadReport, StepStats
    from narrows.capacity_report import CapacityResult

__all__ = [
    "DEFAULT_CONCURRENCY",
    "ROUTES",
    "CapacityError",
    "DemoUnreachable",
    "Interrupted",
    "add_arguments",
    "config_from_args",
    "parse_concurrency",
    "parse_duration_ms",
    "parse_routes",
    "run",
]

DEFAULT_CONCURRENCY = (1, 2, 4, 8, 16, 32)
DEFAULT_STEP_SECONDS = 10.0
DEFAULT_WARMUP_SECONDS = 2.0
#: The demo's routes by the load generator's request kinds (`narrows load --mix`).
ROUTES = {
    "get": "GET /items/{item_id}",
    "multiget": "GET /items",
    "search": "GET /search",
    "put": "PUT /items/{item_id}",
    "checkout": "POST /orders",
}


class CapacityError(Exception):
    """An expected failure: bad options or a sweep that cannot be fitted (exit 2)."""

    exit_code = 2


class DemoUnreachable(CapacityError):
    """The demo did not answer, or stopped answering during the sweep (exit 1)."""

    exit_code = 1


class Interrupted(CapacityError):
    """Ctrl-C or SIGTERM before enough steps ran to fit anything (exit 130)."""

    exit_code = 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target-rps", type=float, help="the request rate to plan replicas for, e.g. 500"
    )
    parser.add_argument(
        "--slo-p99",
        help="latency objective for the 99th percentile, e.g. 200ms or 0.2s (a bare number is ms)",
    )
    parser.add_argument(
        "--headroom",
        type=float,
        default=0.8,
        help="plan each replica for this share of its capacity (default 0.8: 20 %% spare)",
    )
    where = parser.add_argument_group("where the sweep comes from (default: run one)")
    where.add_argument("--demo-url", help="the demo's base URL (default: from endpoints.json)")
    add_data_dir_argument(where)
    where.add_argument(
        "--from",
        dest="from_file",
        type=Path,
        metavar="FILE",
        help="read a sweep saved by --save (CSV or JSON) or `narrows load --json` instead",
    )
    sweep = parser.add_argument_group("the sweep")
    sweep.add_argument(
        "--concurrency",
        help="closed-loop steps of concurrent clients "
        f"(default {','.join(map(str, DEFAULT_CONCURRENCY))})",
    )
    sweep.add_argument(
        "--step-seconds",
        type=float,
        help=f"length of each step (default {DEFAULT_STEP_SECONDS:g})",
    )
    sweep.add_argument(
        "--warmup-seconds",
        type=float,
        help="unmeasured load at the highest concurrency first, so the first step does not "
        f"pay for opening connections (default {DEFAULT_WARMUP_SECONDS:g}; 0: none)",
    )
    sweep.add_argument(
        "--route",
        action="append",
        metavar="ROUTE",
        help="load only this route (repeatable): a kind (get, multiget, search, put, checkout) "
        "or 'METHOD /template', e.g. 'GET /items/{item_id}'; default: the load mix of "
        "`narrows load`",
    )
    sweep.add_argument(
        "--max-id", type=int, help="largest item id requested (default 10000, like narrows load)"
    )
    sweep.add_argument("--seed", type=int, help="random seed of the sweep (default 1)")
    parser.add_argument(
        "--save", type=Path, metavar="FILE", help="also save the sweep (.csv, or .json)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON only")


# --- option parsing ------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s)?\s*$")


def parse_duration_ms(text: str) -> float:
    """``200ms``, ``0.2s`` or ``200`` (milliseconds) → 200.0."""
    match = _DURATION.match(text)
    if not match:
        raise CapacityError(f"--slo-p99 must be a duration like 200ms or 0.2s, got {text!r}")
    value = float(match.group(1)) * (1000.0 if match.group(2) == "s" else 1.0)
    if not 0 < value <= 3_600_000:
        raise CapacityError(f"--slo-p99 must be above 0 and at most an hour, got {text!r}")
    return value


def parse_concurrency(text: str) -> tuple[int, ...]:
    """``1,2,4,8`` → (1, 2, 4, 8): positive whole numbers, at least three distinct."""
    try:
        steps = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise CapacityError(
            f"--concurrency must be comma-separated whole numbers, got {text!r}"
        ) from None
    if any(not 1 <= n <= 10_000 for n in steps):
        raise CapacityError(f"--concurrency steps must be 1 … 10000, got {text!r}")
    if len(set(steps)) < 3:
        raise CapacityError(
            "--concurrency needs at least 3 different steps to fit the Universal "
            f"Scalability Law, got {text!r}"
        )
    return steps


def parse_routes(items: list[str]) -> dict[str, float]:
    """``--route`` values → the load generator's mix (equal weights)."""
    by_route = {route.lower(): kind for kind, route in ROUTES.items()}
    mix: dict[str, float] = {}
    for item in items:
        text = " ".join(item.split())
        kind = text.lower() if text.lower() in ROUTES else by_route.get(text.lower())
        if kind is None:
            matches = [k for k, r in ROUTES.items() if r.split(" ", 1)[1] == text]
            kind = matches[0] if len(matches) == 1 else None
        if kind is None:
            known = "; ".join(f"{k} ({r})" for k, r in ROUTES.items())
            raise CapacityError(f"--route {item!r} is not a demo route; routes: {known}")
        mix[kind] = 1.0
    return mix


def _check_sources(args: argparse.Namespace) -> None:
    if args.target_rps is not None and not 0 < args.target_rps < 1e9:
        raise CapacityError("--target-rps must be a positive rate")
    if not 0 < args.headroom <= 1:
        raise CapacityError(f"--headroom must be within (0, 1], got {args.headroom:g}")
    if args.from_file is not None:
        sweep_only = {
            "--demo-url": args.demo_url,
            "--concurrency": args.concurrency,
            "--step-seconds": args.step_seconds,
            "--warmup-seconds": args.warmup_seconds,
            "--route": args.route,
            "--max-id": args.max_id,
            "--seed": args.seed,
        }
        given = [flag for flag, value in sweep_only.items() if value is not None]
        if given:
            raise CapacityError(
                f"--from reads a saved sweep; {', '.join(given)} only apply when running one"
            )


def _warmup_seconds(args: argparse.Namespace) -> float:
    warmup = DEFAULT_WARMUP_SECONDS if args.warmup_seconds is None else args.warmup_seconds
    if not 0 <= warmup <= 3600:
        raise CapacityError("--warmup-seconds must be 0 … 3600")
    return float(warmup)


def _demo_url(args: argparse.Namespace) -> str:
    if args.demo_url:
        return str(args.demo_url).rstrip("/")
    from narrows.endpoints import Endpoints, EndpointsNotFound

    try:
        return Endpoints.read(args.data_dir).demo.rstrip("/")
    except EndpointsNotFound as exc:
        raise CapacityError(str(exc)) from None


def config_from_args(args: argparse.Namespace, target: str) -> LoadConfig:
    """The closed-loop sweep to run, or CapacityError naming the option that is wrong."""
    from demo_app.load import LoadConfig

    step_seconds = DEFAULT_STEP_SECONDS if args.step_seconds is None else args.step_seconds
    if not 0 < step_seconds <= 3600:
        raise CapacityError("--step-seconds must be above 0 and at most 3600")
    max_id = 10_000 if args.max_id is None else args.max_id
    if not 1 <= max_id <= 2**31 - 1:
        raise CapacityError("--max-id must be 1 … 2147483647")
    config = LoadConfig(
        target=target,
        concurrency=(
            DEFAULT_CONCURRENCY if args.concurrency is None else parse_concurrency(args.concurrency)
        ),
        step_seconds=step_seconds,
        max_id=max_id,
        seed=1 if args.seed is None else args.seed,
        progress_s=0.0,  # one line per finished step instead
    )
    if args.route:
        config = dataclasses.replace(config, mix=parse_routes(args.route))
    return config


# --- the sweep -----------------------------------------------------------------------------


def _step_line(step: StepStats, total: int) -> str:
    s = step.all
    rate = s.latency.count / step.elapsed_s if step.elapsed_s > 0 else 0.0
    errors = 100.0 * s.errors / s.latency.count if s.latency.count else 0.0
    return (
        f"narrows capacity: step {step.index}/{total} c={step.concurrency}: "
        f"{s.latency.count} requests in {step.elapsed_s:.1f} s, {rate:.1f} req/s, "
        f"p50 {s.latency.percentile(0.5) * 1000:.1f} ms, "
        f"p99 {s.latency.percentile(0.99) * 1000:.1f} ms, {errors:.1f} % errors"
    )


def _check_demo(url: str) -> None:
    """One request before anything is printed, so a wrong URL is one line of error."""
    import httpx

    try:
        response = httpx.get(f"{url}/healthz", timeout=10.0)
    except httpx.HTTPError as exc:
        raise DemoUnreachable(
            f"demo unreachable at {url}: {str(exc) or type(exc).__name__}"
        ) from None
    if response.status_code != 200:
        raise DemoUnreachable(
            f"{url}/healthz answered {response.status_code}: is it a Narrows demo?"
        )


def _run_sweep(config: LoadConfig, warmup_s: float) -> LoadReport:
    import asyncio
    import signal

    import httpx

    from demo_app.load import LoadGenerator

    _check_demo(config.target)
    total = len(config.concurrency)
    routes = ", ".join(ROUTES[k] for k, w in config.mix.items() if w > 0)
    print(
        f"narrows capacity: sweeping {config.target} with "
        f"{','.join(map(str, config.concurrency))} clients, {config.step_seconds:g} s each "
        f"after a {warmup_s:g} s warm-up (about {warmup_s + total * config.step_seconds:.0f} s); "
        f"routes: {routes}",
        file=sys.stderr,
        flush=True,
    )

    def on_step(step: StepStats) -> None:
        print(_step_line(step, total), file=sys.stderr, flush=True)

    async def sweep() -> LoadReport:
        # The warm-up, at the highest concurrency and discarded, opens the service's pooled
        # connections and fills its caches, so the first step does not pay for them.
        warmup = LoadGenerator(
            dataclasses.replace(
                config,
                concurrency=(max(config.concurrency),),
                step_seconds=warmup_s,
                seed=config.seed + 1_000_003,
            )
        )
        generator = LoadGenerator(config, on_step=on_step)
        loop = asyncio.get_running_loop()

        def stop() -> None:
            warmup.stop()
            generator.stop()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        try:
            if warmup_s > 0:
                await warmup.run()
                print("narrows capacity: warm-up done", file=sys.stderr, flush=True)
            return await generator.run()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    try:
        report = asyncio.run(sweep())
    except httpx.HTTPError as exc:
        raise DemoUnreachable(f"demo unreachable at {config.target}: {exc}") from None
    for step in report.steps:
        answered = step.all.latency.count - step.all.errors
        if step.all.latency.count and answered == 0:
            raise DemoUnreachable(
                f"the demo at {config.target} stopped answering during step c={step.concurrency} "
                f"({step.all.errors} failed requests)"
            )
    return report


def _sweep_of(report: LoadReport) -> pd.DataFrame:
    from narrows.sweep_file import sweep_from_report

    return sweep_from_report(report.to_dict(), "the sweep")


# --- the run -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from narrows.sweep_file import SweepFileError, read_sweep, write_sweep

    try:
        _check_sources(args)
        slo_p99_ms = None if args.slo_p99 is None else parse_duration_ms(args.slo_p99)
        source: dict[str, Any]
        raw: dict[str, Any] | None = None
        if args.from_file is not None:
            sweep = read_sweep(args.from_file)
            source = {"file": str(args.from_file)}
        else:
            config = config_from_args(args, _demo_url(args))
            report = _run_sweep(config, _warmup_seconds(args))
            if report.stopped_early:
                if len(report.steps) < 3:
                    raise Interrupted(f"stopped after {len(report.steps)} step(s): nothing to fit")
                print(
                    f"narrows capacity: stopped after {len(report.steps)} steps; fitting those",
                    file=sys.stderr,
                )
            raw = report.to_dict()
            sweep = _sweep_of(report)
            source = {
                "demo_url": config.target,
                "step_seconds": config.step_seconds,
                "routes": [ROUTES[k] for k, w in config.mix.items() if w > 0],
            }
        if args.save is not None:
            write_sweep(args.save, sweep, raw)
        result = _analyse(sweep, args.target_rps, slo_p99_ms, args.headroom, source)
    except (CapacityError, SweepFileError) as exc:
        print(f"narrows capacity: {exc}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, CapacityError) else 2
    from narrows.capacity_report import render_json, render_text

    print(render_json(result) if args.json else render_text(result))
    return 0


def _analyse(
    sweep: pd.DataFrame,
    target_rps: float | None,
    slo_p99_ms: float | None,
    headroom: float,
    source: dict[str, Any],
) -> CapacityResult:
    from dashboard.analysis.capacity import capacity_plan
    from narrows.capacity_report import CapacityResult

    try:
        plan = capacity_plan(sweep, target_rps=target_rps, slo_p99_ms=slo_p99_ms, headroom=headroom)
    except (ValueError, RuntimeError) as exc:
        # Too few steps, or a fit that does not converge: say so rather than guess.
        raise CapacityError(
            f"cannot fit the Universal Scalability Law to this sweep: {exc}"
        ) from None
    return CapacityResult(sweep, plan, source)
