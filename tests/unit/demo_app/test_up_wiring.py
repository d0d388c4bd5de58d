"""`narrows up` hands the demo options to `narrows demo` and the OTLP endpoint to the load."""

from __future__ import annotations

from pathlib import Path

import pytest

from narrows.cli import build_parser
from narrows.plan import load_child, plan_children
from narrows.ports import PortPlan


def _ports() -> PortPlan:
    return PortPlan(demo=18000, otlp=14318, zipkin=19411, query=16687, dashboard=18501)


def test_up_passes_shards_cache_dsns_and_faults_to_the_demo() -> None:
    args = build_parser("up").parse_args(
        [
            "up",
            "--shards", "3",
            "--cache", "redis://127.0.0.1:1/0",
            "--shard-dsn", "postgresql://h/s_{i}",
            "--fault", "slow_shard:shard=2,delay_ms=50",
            "--fault", "cache_outage",
        ]
    )  # fmt: skip
    demo = next(c for c in plan_children(args, _ports(), Path("/tmp/x")) if c.name == "demo")
    argv = " ".join(demo.argv)
    assert "--shards 3" in argv
    assert "--cache redis://127.0.0.1:1/0" in argv
    assert "--shard-dsn postgresql://h/s_{i}" in argv
    assert "--fault slow_shard:shard=2,delay_ms=50 --fault cache_outage" in argv


def test_up_without_demo_options_passes_none() -> None:
    args = build_parser("up").parse_args(["up"])
    demo = next(c for c in plan_children(args, _ports(), Path("/tmp/x")) if c.name == "demo")
    assert not {"--shards", "--cache", "--shard-dsn", "--fault"} & set(demo.argv)


def test_the_load_child_runs_until_stopped_and_exports_to_our_collector() -> None:
    child = load_child(_ports())
    assert child.argv[-4:] == ["--target", "http://127.0.0.1:18000", "--duration", "0"]
    assert child.env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:14318"


def test_up_load_rate_sets_the_load_generators_rate() -> None:
    args = build_parser("up").parse_args(["up", "--load", "--load-rate", "12.5"])
    child = load_child(_ports(), args.load_rate)
    assert child.argv[-2:] == ["--rate", "12.5"]
    for bad in ("0", "-3", "fast"):
        with pytest.raises(SystemExit):
            build_parser("up").parse_args(["up", "--load", "--load-rate", bad])


def test_up_has_the_demo_log_every_request_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dashboard's Logs page and a trace's inline logs need the demo to log something
    for ordinary requests: its access line (stdout and OTLP)."""
    args = build_parser("up").parse_args(["up"])
    monkeypatch.delenv("NARROWS_ACCESS_LOG", raising=False)
    demo = next(c for c in plan_children(args, _ports(), Path("/tmp/x")) if c.name == "demo")
    assert demo.env["NARROWS_ACCESS_LOG"] == "true"
    monkeypatch.setenv("NARROWS_ACCESS_LOG", "false")
    demo = next(c for c in plan_children(args, _ports(), Path("/tmp/x")) if c.name == "demo")
    assert demo.env["NARROWS_ACCESS_LOG"] == "false"


def test_up_has_the_collector_scrape_the_demo_every_five_seconds() -> None:
    """The Shards page reads pool wait from the scraped histogram: a 15 s default would leave
    it empty for the first half minute."""
    args = build_parser("up").parse_args(["up"])
    collector = next(
        c for c in plan_children(args, _ports(), Path("/tmp/x")) if c.name == "collector"
    )
    scrape = collector.argv[collector.argv.index("--scrape") + 1]
    assert scrape == "http://127.0.0.1:18000/metrics,5s"


def test_up_passes_seed_items_pool_size_and_db_latency_to_the_demo() -> None:
    args = build_parser("up").parse_args(
        ["up", "--seed-items", "500", "--pool-size", "2", "--db-latency-ms", "7.5"]
    )
    demo = next(c for c in plan_children(args, _ports(), Path("/tmp/x")) if c.name == "demo")
    argv = " ".join(demo.argv)
    assert "--seed-items 500" in argv
    assert "--pool-size 2" in argv
    assert "--db-latency-ms 7.5" in argv


def test_up_without_dashboard_starts_only_the_collector_and_the_demo() -> None:
    args = build_parser("up").parse_args(["up", "--no-dashboard"])
    names = [c.name for c in plan_children(args, _ports(), Path("/tmp/x"))]
    assert names == ["collector", "demo"]
