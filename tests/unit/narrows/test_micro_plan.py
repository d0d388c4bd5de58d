"""`narrows up --replicas catalog=3`: which processes run, with which flags, ids and ports."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from narrows.children import ChildSpec
from narrows.cli import build_parser
from narrows.micro import parse_replicas
from narrows.plan import plan_children, topology
from narrows.ports import PortPlan

DATA = Path("/tmp/narrows-plan")


def _ports() -> PortPlan:
    return PortPlan(demo=18000, otlp=14318, zipkin=19411, query=16687, dashboard=18501)


def _plan(*argv: str) -> dict[str, ChildSpec]:
    args = build_parser("up").parse_args(["up", *argv])
    return {c.name: c for c in plan_children(args, _ports(), DATA)}


def _flag(spec: ChildSpec, flag: str) -> str:
    return spec.argv[spec.argv.index(flag) + 1]


def test_replicas_imply_the_micro_topology_and_name_every_process() -> None:
    plan = _plan("--replicas", "catalog=3")
    assert list(plan) == [
        "collector", "catalog-0", "catalog-1", "catalog-2", "orders-0", "gateway", "dashboard",
    ]  # fmt: skip
    assert topology(build_parser("up").parse_args(["up", "--topology", "micro"])) == "micro"
    assert topology(build_parser("up").parse_args(["up"])) == "single"


def test_each_replica_has_its_own_port_service_name_and_instance_id() -> None:
    plan = _plan("--replicas", "catalog=3,orders=2")
    ports = {_flag(plan[n], "--port") for n in plan if n not in ("collector", "dashboard")}
    assert len(ports) == 6
    assert _flag(plan["gateway"], "--port") == "18000"  # the public API keeps the demo port
    for name in ("catalog-0", "catalog-2", "orders-1", "gateway"):
        env = plan[name].env
        short = name.split("-")[0]
        assert env["OTEL_SERVICE_NAME"] == f"narrows-{short}"
        instance = name if short != "gateway" else "gateway-0"
        assert f"service.instance.id={instance}" in env["OTEL_RESOURCE_ATTRIBUTES"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:14318"
        assert plan[name].instance == instance
    assert _flag(plan["catalog-2"], "--instance-index") == "2"
    assert _flag(plan["catalog-2"], "--replicas") == "3"


def test_the_gateway_knows_every_replica_and_holds_the_faults() -> None:
    plan = _plan(
        "--replicas", "catalog=2", "--shards", "3", "--fault", "slow_replica:instance=1",
    )  # fmt: skip
    gateway = plan["gateway"]
    catalogs = _flag(gateway, "--catalog").split(",")
    assert [c.split("=")[0] for c in catalogs] == ["catalog-0", "catalog-1"]
    assert catalogs[1].split("=")[1] == plan["catalog-1"].url
    assert _flag(gateway, "--orders") == f"orders-0={plan['orders-0'].url}"
    assert _flag(gateway, "--fault") == "slow_replica:instance=1"
    assert _flag(gateway, "--control-dir") == str(DATA / "run")
    assert "--fault" not in plan["catalog-0"].argv  # the gateway forwards them
    for name in ("catalog-0", "orders-0", "gateway"):
        assert _flag(plan[name], "--shards") == "3"
    assert _flag(plan["orders-0"], "--catalog") == _flag(gateway, "--catalog")


def test_replicas_are_restarted_and_catalog_ones_can_be_held_down() -> None:
    plan = _plan("--replicas", "catalog=2")
    assert plan["catalog-1"].restart
    assert plan["catalog-1"].down_marker == DATA / "run" / "down" / "catalog-1"
    assert plan["orders-0"].restart
    assert plan["orders-0"].down_marker is None
    assert not plan["gateway"].restart


def test_the_collector_scrapes_every_service_process() -> None:
    plan = _plan("--replicas", "catalog=3")
    argv = plan["collector"].argv
    scraped = [argv[i + 1] for i, a in enumerate(argv) if a == "--scrape"]
    urls = {plan[n].url for n in ("gateway", "orders-0", "catalog-0", "catalog-1", "catalog-2")}
    assert {s.removesuffix("/metrics,5s") for s in scraped} == urls


def test_orders_get_their_own_postgresql_databases() -> None:
    derived = _plan("--replicas", "catalog=1", "--shard-dsn", "postgresql://h/shard_{i}")
    assert _flag(derived["orders-0"], "--shard-dsn") == "postgresql://h/shard_orders_{i}"
    assert _flag(derived["catalog-0"], "--shard-dsn") == "postgresql://h/shard_{i}"
    given = _plan(
        "--replicas", "catalog=1", "--shard-dsn", "postgresql://h/s_{i}",
        "--orders-shard-dsn", "postgresql://h/o_{i}",
    )  # fmt: skip
    assert _flag(given["orders-0"], "--shard-dsn") == "postgresql://h/o_{i}"
    with pytest.raises(ValueError, match="--orders-shard-dsn"):
        _plan(
            "--topology",
            "micro",
            "--shard-dsn",
            "postgresql://h/a",
            "--shard-dsn",
            "postgresql://h/b",
        )


@pytest.mark.parametrize("text", ["catalog", "catalog=0", "catalog=99", "search=2", "catalog=x"])
def test_a_bad_replicas_option_says_what_is_expected(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"catalog=|replicas must be"):
        parse_replicas(text)


def test_the_single_topology_is_unchanged() -> None:
    plan = _plan()
    assert list(plan) == ["collector", "demo", "dashboard"]
    assert plan["demo"].argv[3] == "demo"
