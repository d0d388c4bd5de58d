"""Port planning for `narrows up`: defaults, free ports, and a taken port as a clear error."""

from __future__ import annotations

import socket

import pytest

from narrows.ports import DEFAULT_PORTS, PortInUse, PortPlan, free_port


def test_free_mode_picks_distinct_free_ports() -> None:
    plan = PortPlan.resolve({}, free=True, host="127.0.0.1")
    ports = [plan.demo, plan.otlp, plan.zipkin, plan.query, plan.dashboard]
    assert len(set(ports)) == 5


def test_explicit_port_wins_over_free_mode() -> None:
    port = free_port()
    plan = PortPlan.resolve({"demo": port}, free=True, host="127.0.0.1")
    assert plan.demo == port


def test_taken_port_names_the_flag_that_changes_it() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortInUse) as exc:
            PortPlan.resolve({"query": port}, free=True, host="127.0.0.1")
    assert str(port) in str(exc.value)
    assert "--query-port" in str(exc.value)


def test_defaults_match_the_design() -> None:
    assert {k: v[1] for k, v in DEFAULT_PORTS.items()} == {
        "demo": 8000,
        "otlp": 4318,
        "zipkin": 9411,
        "query": 16686,
        "dashboard": 8501,
    }
