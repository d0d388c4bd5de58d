"""Issue 10's part of the ground truth: on a real `narrows up --replicas catalog=3 --load`,
each micro fault switched on makes the diagnosis put the right kind and subject first, and
a healthy window raises no alarm.

One stack serves every case (starting seven processes is most of the cost). The cases run
in this file's order, each on its own window: it clears every fault, waits until the
gateway counts every catalog replica healthy again, switches its fault on, lets the load
run for ``WINDOW_S``, and diagnoses only the time since its switch (``--since``), so no
case sees another's fault. Parameters vary across the cases — which replica, how much
delay — so the engine cannot lean on one instance or one magnitude.

The diagnosis is `narrows diagnose --json --since … --until …` run as a subprocess
(``diagnose_since``).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support.procs import wait_for
from tests.support.stack import UpStack, narrows_up

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CATALOG = "narrows-catalog"
GATEWAY = "narrows-gateway"
#: Requests per second of the stack's own load generator: the micro stack costs about three
#: times a single demo's CPU per request, and two noisy cores must also run the analysis.
RATE = 12
#: Seconds of traffic each case diagnoses, and the pause after clearing the previous case's
#: fault (its last slow or refused calls end; the window reaches up to 1 s before its switch).
WINDOW_S = 5.0
SETTLE_S = 1.0

#: Seconds the diagnosis waits for each collector answer (`--timeout`): generous, as the
#: collector shares two noisy cores with the stack under load.
QUERY_TIMEOUT_S = 30.0

Findings = list[dict[str, Any]]


def diagnose_since(stack: UpStack, since_s: float, until: float) -> Findings:
    """`narrows diagnose --json` on the ``since_s`` seconds up to ``until`` (Unix seconds) of
    the running stack (found through its endpoints.json), as data; stdout holds the JSON and
    nothing else. ``until`` pins the window: the CLI's own start-up, seconds on a crowded
    machine, would otherwise slide it past the switch."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "narrows",
            "diagnose",
            "--data-dir",
            str(stack.data_dir),
            "--since",
            f"{since_s:g}s",
            "--until",
            f"{until:.3f}",
            "--timeout",
            f"{QUERY_TIMEOUT_S:g}",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "failed on this data" not in result.stderr, result.stderr
    found: Findings = json.loads(result.stdout)
    return found


@dataclass(frozen=True)
class Case:
    id: str
    fault: str | None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    case: Case
    findings: Findings
    seconds: float

    def describe(self) -> str:
        lines = [f"{self.case.id}: {len(self.findings)} findings ({self.seconds:.1f}s)"]
        for f in self.findings[:8]:
            cause = f["evidence"]["explained_by"]
            lines.append(
                f"  {f['severity']:8} {f['kind']:18} {f['subject']} "
                f"score={f['impact']['score']}{f' ← {cause}' if cause else ''}\n"
                f"           {f['summary']}"
            )
        return "\n".join(lines)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    data = tmp_path_factory.mktemp("micro-ground-truth") / "data"
    args = ("--replicas", "catalog=3", "--load", "--load-rate", str(RATE), "--no-dashboard")
    with narrows_up(data, *args) as up:
        yield up


def _gateway(stack: UpStack) -> httpx.Client:
    return httpx.Client(base_url=stack.endpoints["demo"], timeout=10)


def _all_healthy(stack: UpStack) -> bool:
    with _gateway(stack) as gw:
        health = gw.get("/healthz", timeout=2).json()
    upstreams = health["upstreams"]
    return len(upstreams.get(CATALOG, {})) == 3 and all(
        all(up.values()) for up in upstreams.values()
    )


def run_case(stack: UpStack, case: Case) -> Outcome:
    """Clear, wait for a whole healthy topology, switch ``case`` on, diagnose its window."""
    with _gateway(stack) as gw:
        assert gw.delete("/admin/faults").status_code == 200
        wait_for(lambda: _all_healthy(stack), 60, "every catalog replica to be healthy")
        time.sleep(SETTLE_S)
        if case.fault is not None:
            answer = gw.put(f"/admin/faults/{case.fault}", json=case.params)
            assert answer.status_code == 200, answer.text
        on = time.time()
        time.sleep(WINDOW_S)
        started = time.monotonic()
        # Whole seconds back to the switch (the window ends at the next whole second).
        until = time.time()
        findings = diagnose_since(stack, math.floor(until - on + 1.0), until)
        seconds = time.monotonic() - started
        assert gw.delete("/admin/faults").status_code == 200
    outcome = Outcome(case, findings, seconds)
    print(outcome.describe())  # the figures for the record (pytest -s)
    return outcome


def _top_alarm(outcome: Outcome) -> dict[str, Any]:
    assert outcome.findings, "no findings at all\n" + outcome.describe()
    first = outcome.findings[0]
    assert first["severity"] in ("notable", "critical"), outcome.describe()
    assert first["evidence"]["explained_by"] is None, outcome.describe()
    return first


def _replica(instance: int) -> dict[str, str]:
    return {"service.name": CATALOG, "service.instance.id": f"catalog-{instance}"}


# The order below is the order they run in: the slow replicas first (the stack's start-up
# — the dashboard, cold connection pools — still costs CPU then, and a healthy window must
# not pay for it), the replicas that go down last (a restart takes longest).


@pytest.mark.parametrize(
    "case",
    [
        Case("slow_replica-0-150ms", "slow_replica", {"instance": 0, "delay_ms": 150}),
        Case(
            "slow_replica-1-25ms-jitter",
            "slow_replica",
            {"instance": 1, "delay_ms": 25, "jitter_ms": 10},
        ),
    ],
    ids=lambda c: c.id,
)
def test_a_slow_replica_is_found_first_as_that_replica(stack: UpStack, case: Case) -> None:
    outcome = run_case(stack, case)
    first = _top_alarm(outcome)
    assert first["kind"] == "slow_replica", outcome.describe()
    assert first["subject"] == _replica(case.params["instance"]), outcome.describe()


def test_a_healthy_micro_stack_raises_no_alarm(stack: UpStack) -> None:
    outcome = run_case(stack, Case("healthy", None))
    alarms = [f for f in outcome.findings if f["severity"] != "info"]
    assert not alarms, outcome.describe()


def test_a_retry_storm_is_found_first_on_the_gateways_calls_to_catalog(stack: UpStack) -> None:
    # The catalog fails in 200 ms hiccups, ``error_rate`` of them: 30 % makes at least two
    # hiccups in a 5 s window all but certain (P(≤ 1) ≈ 0.2 %), so the storm is there to find.
    outcome = run_case(
        stack, Case("retry_storm-5-30pct", "retry_storm", {"retries": 5, "error_rate": 0.3})
    )
    first = _top_alarm(outcome)
    assert first["kind"] == "retry_storm", outcome.describe()
    assert first["subject"] == {"service.name": GATEWAY, "app.upstream.service": CATALOG}, (
        outcome.describe()
    )


@pytest.mark.parametrize(
    "case",
    [
        Case("replica_down-2", "replica_down", {"instance": 2}),
        Case("replica_down-1", "replica_down", {"instance": 1}),
    ],
    ids=lambda c: c.id,
)
def test_a_replica_down_is_found_first_as_that_replica(stack: UpStack, case: Case) -> None:
    outcome = run_case(stack, case)
    first = _top_alarm(outcome)
    assert first["kind"] == "replica_down", outcome.describe()
    assert first["subject"] == _replica(case.params["instance"]), outcome.describe()
