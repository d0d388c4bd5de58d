"""`narrows up --replicas catalog=3 --load`: one request followed across gateway, orders and
every catalog replica (through the collector's Jaeger v3 API); a replica killed under load is
ejected and the service recovers; the new faults switch through the gateway.

One stack for the module (starting seven Python processes is most of the cost).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support.procs import wait_for
from tests.support.prom import metric_sum
from tests.support.stack import UpStack, narrows_up

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CATALOGS = {"catalog-0", "catalog-1", "catalog-2"}
SERVICES = {"narrows-gateway", "narrows-orders", "narrows-catalog"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    data = tmp_path_factory.mktemp("micro") / "data"
    with narrows_up(data, "--replicas", "catalog=3", "--load") as up:
        yield up


# --- reading traces back --------------------------------------------------------------------


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent: str
    name: str
    kind: int
    service: str
    instance: str
    start_ns: int
    end_ns: int
    attrs: dict[str, Any] = field(default_factory=dict)


def _value(v: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    return int(v["intValue"]) if "intValue" in v else None


def _spans(doc: dict[str, Any]) -> list[Span]:
    out = []
    for rs in doc["result"]["resourceSpans"]:
        res = {a["key"]: _value(a["value"]) for a in rs["resource"]["attributes"]}
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                out.append(
                    Span(
                        s["traceId"],
                        s["spanId"],
                        s.get("parentSpanId", ""),
                        s["name"],
                        int(s["kind"]),
                        str(res.get("service.name")),
                        str(res.get("service.instance.id")),
                        int(s["startTimeUnixNano"]),
                        int(s["endTimeUnixNano"]),
                        {a["key"]: _value(a["value"]) for a in s.get("attributes", [])},
                    )
                )
    return out


SERVER, CLIENT = 2, 3


def _complete(spans: list[Span], services: set[str]) -> bool:
    """Every expected service present and every client call's server span arrived."""
    ids = {s.span_id for s in spans}
    calls = [s for s in spans if s.kind == CLIENT and "app.upstream.service" in s.attrs]
    return (
        {s.service for s in spans} >= services
        and all(any(c.span_id == s.parent for s in spans if s.kind == SERVER) for c in calls)
        and all(
            s.parent in ids for s in spans if s.service != "narrows-gateway" or s.kind != SERVER
        )
    )


def _trace(query: str, trace_id: str, services: set[str], timeout: float = 20) -> list[Span]:
    found: list[Span] = []

    def ready() -> bool:
        answer = httpx.get(f"{query}/api/v3/traces/{trace_id}", timeout=3)
        if answer.status_code != 200:
            return False
        found[:] = _spans(answer.json())
        return _complete(found, services)

    wait_for(ready, timeout, f"trace {trace_id} with {sorted(services)}")
    return found


def _check_hops(spans: list[Span]) -> None:
    """Each call between services: the callee's SERVER span is the CLIENT span's child, in
    the service and on the replica the client span names."""
    by_id = {s.span_id: s for s in spans}
    for server in (s for s in spans if s.kind == SERVER and s.service != "narrows-gateway"):
        client = by_id[server.parent]
        assert client.kind == CLIENT
        assert client.attrs["app.upstream.service"] == server.service
        assert client.attrs["app.upstream.instance"] == server.instance
        assert client.start_ns <= server.start_ns
        assert server.end_ns <= client.end_ns
    for span in spans:
        if span.kind == SERVER:
            assert span.attrs.get("app.tenant") == "acme", (span.service, span.name)


def test_requests_are_traced_across_all_services_and_every_catalog_replica(
    stack: UpStack,
) -> None:
    ep = stack.endpoints
    assert ep["topology"] == "micro"
    assert {p["instance"] for p in ep["processes"]} >= {*CATALOGS, "orders-0", "gateway-0"}
    # `narrows up` is ready when every process answers; the gateway admits each replica at
    # its first good health check (every second), so one may still be out of rotation.
    wait_for(lambda: _all_healthy(ep["demo"]), 30, "every replica to be admitted")
    traces: dict[str, set[str]] = {}
    with httpx.Client(base_url=ep["demo"], timeout=10, headers={"x-tenant": "acme"}) as client:
        for i in range(12):
            trace_id = secrets.token_hex(16)
            parent = secrets.token_hex(8)
            if i == 0:  # B3 single is accepted on the way in
                headers = {"b3": f"{trace_id}-{parent}-1"}
            else:
                headers = {"traceparent": f"00-{trace_id}-{parent}-01"}
            assert client.get(f"/items/{100 + i}", headers=headers).status_code == 200
            traces[trace_id] = {"narrows-gateway", "narrows-catalog"}
        trace_id = secrets.token_hex(16)
        order = client.post(
            "/orders",
            json={"items": [{"id": 7}, {"id": 8}]},
            headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
        )
        assert order.status_code == 201, order.text
        traces[trace_id] = SERVICES
    replicas: set[str] = set()
    for trace_id, services in traces.items():
        spans = _trace(ep["query"], trace_id, services)
        _check_hops(spans)
        replicas |= {s.instance for s in spans if s.service == "narrows-catalog"}
        if services == SERVICES:  # gateway → orders → catalog → shards
            chain = [s.service for s in spans if s.kind == SERVER]
            assert {"narrows-gateway", "narrows-orders", "narrows-catalog"} <= set(chain)
            assert any(s.service == "narrows-catalog" and "app.shard.id" in s.attrs for s in spans)
            assert any(s.service == "narrows-orders" and s.name == "INSERT orders" for s in spans)
    assert replicas == CATALOGS


# --- a replica killed under load --------------------------------------------------------------


@dataclass
class Sent:
    at: float
    seconds: float
    status: int | None


async def _drive(base: str, seconds: float, rate: float, kill_at: float, pid: int) -> list[Sent]:
    """``rate`` requests/s for ``seconds``; SIGKILL ``pid`` at ``kill_at``."""
    out: list[Sent] = []
    started = time.monotonic()

    async def one(client: httpx.AsyncClient, i: int) -> None:
        at = time.monotonic() - started
        path = f"/items/{1 + i % 500}" if i % 4 else f"/items?ids={i % 90 + 1},{i % 90 + 2}"
        try:
            status: int | None = (await client.get(path)).status_code
        except httpx.HTTPError:
            status = None
        out.append(Sent(at, time.monotonic() - started - at, status))

    killed = False
    async with httpx.AsyncClient(base_url=base, timeout=15) as client:
        tasks = []
        i = 0
        while time.monotonic() - started < seconds:
            if not killed and time.monotonic() - started >= kill_at:
                os.kill(pid, signal.SIGKILL)
                killed = True
            tasks.append(asyncio.create_task(one(client, i)))
            i += 1
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)
    return out


def _gateway_events(stack: UpStack, event: str) -> list[dict[str, Any]]:
    lines = (stack.data_dir / "logs" / "gateway.log").read_text(errors="replace").splitlines()
    found = []
    for line in lines:
        if event in line:
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return [e for e in found if e.get("event") == event]


def _all_healthy(base: str) -> bool:
    health = httpx.get(f"{base}/healthz", timeout=2).json()
    return all(all(up.values()) for up in health["upstreams"].values())


def test_a_killed_catalog_replica_is_ejected_and_the_service_recovers(stack: UpStack) -> None:
    ep = stack.endpoints
    base = ep["demo"]
    wait_for(lambda: _all_healthy(base), 30, "every replica to be healthy")
    victim = next(p for p in ep["processes"] if p["instance"] == "catalog-1")
    kill_at, seconds = 2.0, 9.0
    sent = asyncio.run(_drive(base, seconds, 30.0, kill_at, victim["pid"]))

    # No request hangs past its timeout (the gateway gives a catalog call 4 s in all).
    assert len(sent) > 150
    assert all(s.status is not None for s in sent)
    assert max(s.seconds for s in sent) < 8.0
    failed = [s for s in sent if s.status != 200]
    late = [s for s in failed if s.at > kill_at + 3.0]
    print(  # the figures for the record (pytest -s)
        f"kill under load: {len(sent)} requests, {len(failed)} failed "
        f"({sorted(round(s.at - kill_at, 2) for s in failed)} s after the kill), "
        f"slowest {max(s.seconds for s in sent):.2f} s"
    )
    assert len(failed) <= 0.05 * len(sent), failed
    assert not late, late  # recovered: errors, if any, only right after the kill

    ejected = _gateway_events(stack, "upstream ejected")
    assert any(e["upstream.instance"] == "catalog-1" for e in ejected), ejected
    assert all(e["upstream.service"] == "narrows-catalog" and e["reason"] for e in ejected)
    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    catalog1 = {"upstream": "narrows-catalog", "instance": "catalog-1"}
    assert metric_sum(metrics, "app_upstream_ejections_total", **catalog1) >= 1
    # The kill shows in the attempts (refused/reset, then retried elsewhere), briefly: the
    # ejection stops the gateway from sending catalog-1 anything more …
    attempt_errors = metric_sum(metrics, "app_upstream_requests_total", **catalog1, outcome="error")
    assert 1 <= attempt_errors <= 25
    assert metric_sum(metrics, "app_upstream_retries_total", upstream="narrows-catalog") >= 1
    # … and the supervisor brings the replica back, the gateway readmits it.
    try:
        wait_for(
            lambda: any(
                e["upstream.instance"] == "catalog-1"
                for e in _gateway_events(stack, "upstream readmitted")
            ),
            40,
            "catalog-1 to be restarted and readmitted",
        )
    except AssertionError as exc:  # say what the gateway saw, and what the supervisor did
        gateway = (stack.data_dir / "logs" / "gateway.log").read_text(errors="replace")
        lines = [ln for ln in gateway.splitlines() if "upstream" in ln or "health" in ln]
        health = httpx.get(f"{base}/healthz", timeout=5).text
        raise AssertionError(
            f"{exc}\ngateway /healthz: {health}\ngateway's upstream lines:\n"
            + "\n".join(lines[-20:])
            + f"\nnarrows up:\n{stack.proc.log()[-2000:]}"
        ) from None
    assert "catalog-1" in stack.proc.log()
    assert "restarted" in stack.proc.log()
    processes = json.loads((stack.data_dir / "endpoints.json").read_text())["processes"]
    assert next(p for p in processes if p["instance"] == "catalog-1")["pid"] != victim["pid"]


# --- faults through the gateway --------------------------------------------------------------


def _fault(stack: UpStack, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "narrows", "fault", *args, "--data-dir", str(stack.data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result


def _refuses(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=1)
    except httpx.ConnectError:
        return True
    return False


def test_the_new_faults_switch_through_the_gateway(stack: UpStack) -> None:
    ep = stack.endpoints
    urls = {p["instance"]: p["url"] for p in ep["processes"]}
    _fault(stack, "set", "slow_replica", "instance=2", "delay_ms=250")
    shown = httpx.get(f"{urls['catalog-2']}/admin/faults/slow_replica", timeout=5).json()
    assert shown["active"]
    assert shown["params"]["delay_ms"] == 250
    started = time.monotonic()
    assert httpx.get(f"{urls['catalog-2']}/items/5", timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.25
    _fault(stack, "clear", "slow_replica")

    _fault(stack, "set", "replica_down", "instance=0")
    wait_for(lambda: _refuses(urls["catalog-0"]), 10, "catalog-0 to stop answering")
    with httpx.Client(base_url=ep["demo"], timeout=10) as client:
        assert all(client.get(f"/items/{i}").status_code == 200 for i in range(1, 16))
    time.sleep(1.5)  # the supervisor would have restarted it by now, were it not held down
    assert _refuses(urls["catalog-0"])
    _fault(stack, "clear", "replica_down")
    wait_for(lambda: not _refuses(urls["catalog-0"]), 40, "catalog-0 to be back")

    listing = _fault(stack, "list").stdout
    assert re.search(r"^retry_storm\s+off", listing, re.M)
    _fault(stack, "set", "retry_storm", "retries=4")
    assert re.search(r"^retry_storm\s+ON", _fault(stack, "list").stdout, re.M)
    _fault(stack, "clear")
