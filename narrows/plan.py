"""What `narrows up` starts: the child processes of a topology and the flags that connect
them (ports, OTLP endpoint, scrape targets, the demo options passed through).

Pure planning — nothing here starts a process; narrows/supervisor.py runs the plan.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from narrows.children import ChildSpec
from narrows.micro import MicroPlan
from narrows.ports import PortPlan

__all__ = ["load_child", "micro_plan", "plan_children", "positive_rate", "topology"]

#: How often the collector scrapes each service's /metrics (the Shards page's pool wait
#: comes from that histogram).
SCRAPE_INTERVAL = "5s"


def topology(args: argparse.Namespace) -> str:
    """``micro`` when asked for, or implied by ``--replicas``; else ``single``."""
    if getattr(args, "replicas", None):
        return "micro"
    return str(getattr(args, "topology", None) or "single")


def micro_plan(args: argparse.Namespace, ports: PortPlan, data_dir: Path) -> MicroPlan:
    """The micro topology's services (free ports picked now for the replicas)."""
    return MicroPlan(
        args,
        data_dir,
        gateway_port=ports.demo,
        common_env={**_otel_env(ports), **_demo_env()},
        store_options=_demo_options(args, faults=False),
    )


def plan_children(
    args: argparse.Namespace, ports: PortPlan, data_dir: Path, micro: MicroPlan | None = None
) -> list[ChildSpec]:
    """The processes `narrows up` runs, with the flags that connect them."""
    host = "127.0.0.1"
    me = [sys.executable, "-m", "narrows"]
    if topology(args) == "micro":
        micro = micro or micro_plan(args, ports, data_dir)
        services = micro.children()
        scrape = micro.scrape_urls()
    else:
        services = [_demo_child(args, ports, data_dir)]
        scrape = [f"http://{host}:{ports.demo}/metrics"]
    collector = ChildSpec(
        "collector",
        [
            *me,
            "collector",
            "--data-dir",
            str(data_dir),
            "--otlp-port",
            str(ports.otlp),
            "--zipkin-port",
            str(ports.zipkin),
            "--query-port",
            str(ports.query),
            # Every 5 s: the Shards page's pool wait comes from this histogram.
            *(opt for url in scrape for opt in ("--scrape", f"{url},{SCRAPE_INTERVAL}")),
        ],
        f"http://{host}:{ports.query}/healthz",
        stop_tier=2,
    )
    dashboard = ChildSpec(
        "dashboard",
        [
            *me,
            "dashboard",
            "--dashboard-port",
            str(ports.dashboard),
            "--query-url",
            f"http://{host}:{ports.query}",
        ],
        f"http://{host}:{ports.dashboard}/_stcore/health",
    )
    if getattr(args, "no_dashboard", False):
        return [collector, *services]
    return [collector, *services, dashboard]


def _demo_child(args: argparse.Namespace, ports: PortPlan, data_dir: Path) -> ChildSpec:
    url = f"http://127.0.0.1:{ports.demo}"
    return ChildSpec(
        "demo",
        [
            sys.executable,
            "-m",
            "narrows",
            "demo",
            "--data-dir",
            str(data_dir),
            "--demo-port",
            str(ports.demo),
            *_demo_options(args),
        ],
        f"{url}/healthz",
        env={**_otel_env(ports), **_demo_env()},
        service="narrows-demo",
        url=url,
    )


def _otel_env(ports: PortPlan) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports.otlp}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        # Traces show up within about a second instead of the SDK's default five.
        "OTEL_BSP_SCHEDULE_DELAY": os.environ.get("OTEL_BSP_SCHEDULE_DELAY", "1000"),
    }


def _demo_env() -> dict[str, str]:
    """The demo logs one access line per request (as OTLP logs too), so every trace on the
    dashboard has logs to show; ``NARROWS_ACCESS_LOG=false`` turns it off."""
    return {"NARROWS_ACCESS_LOG": os.environ.get("NARROWS_ACCESS_LOG", "true")}


def _demo_options(args: argparse.Namespace, *, faults: bool = True) -> list[str]:
    """`narrows up`'s demo flags, passed through unchanged (`narrows demo` validates them);
    the micro topology's catalog gets them without the faults (the gateway holds those)."""
    out: list[str] = []
    if getattr(args, "shards", None) is not None:
        out += ["--shards", str(args.shards)]
    if getattr(args, "cache", None):
        out += ["--cache", args.cache]
    for flag in ("seed_items", "pool_size", "db_latency_ms"):
        if getattr(args, flag, None) is not None:
            out += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    for dsn in getattr(args, "shard_dsn", None) or []:
        out += ["--shard-dsn", dsn]
    for fault in (getattr(args, "fault", None) or []) if faults else []:
        out += ["--fault", fault]
    return out


def positive_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < rate <= 10_000:
        raise argparse.ArgumentTypeError(f"must be within (0, 10000] requests/s; got {text!r}")
    return rate


def load_child(ports: PortPlan, rate: float | None = None) -> ChildSpec:
    """`narrows load` against the demo until stopped (``rate`` req/s, else its default)."""
    return ChildSpec(
        "load",
        [
            sys.executable,
            "-m",
            "narrows",
            "load",
            "--target",
            f"http://127.0.0.1:{ports.demo}",
            "--duration",
            "0",
            *(["--rate", f"{rate:g}"] if rate is not None else []),
        ],
        None,
        env=_otel_env(ports),
        stop_tier=0,
    )
