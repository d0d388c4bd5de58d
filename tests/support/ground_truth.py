"""Ground truth on the real demo: `narrows up`, load, one fault, `narrows diagnose --json`.

One ``Case`` is one run with its own data dir and free ports: `narrows up --no-dashboard`
(a small catalogue, so the demo starts in seconds), `narrows load` at a fixed Poisson rate,
a warm-up (until the cache is warm, for the cases that need it), the fault switched
on through the demo's admin API (what `narrows fault set` does), then — as soon as the
collector holds enough requests served with the fault on (polled, never a fixed sleep) —
the real `narrows diagnose --json` as a subprocess, over a window that starts shortly
before the switch. Every step's duration is recorded, so a slow run says where it was.

``Runs`` runs several cases at once (each case is mostly waiting for traffic to
accumulate), so the whole ground truth fits in a few minutes on two cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo_app.shards import shard_for
from tests.support.procs import OwnedProcess, narrows_cmd, wait_for
from tests.support.stack import UpStack, narrows_up

__all__ = ["Case", "Outcome", "Runs", "hot_shard_of", "run_case"]

DEMO_SERVICE = "narrows-demo"
WARM_S = 6.0
SHARDS = 4
Expected = tuple[str, dict[str, str]]


@dataclass(frozen=True)
class Case:
    """One fault (or none) at one grade and one load, and what diagnose must put first."""

    id: str
    fault: str | None
    params: Mapping[str, Any] = field(default_factory=dict)
    #: The finding expected first, or a function of the demo's fault state (hot_keys: the
    #: demo draws the keys, hence the shard, from the seed). None: a healthy run.
    expect: Expected | Callable[[dict[str, Any]], Expected] | None = None
    #: More subjects of the same kind that must be alarms too (fan-out: both routes); any
    #: of these or ``expect``'s subject may rank first.
    also: tuple[Mapping[str, str], ...] = ()
    rate: float = 40.0
    seed: int = 1
    keys: str = "uniform"
    items: int = 1000
    #: Requests served before the switch (the cache warms, the window gets a baseline),
    #: and after it.
    before: int = 100
    after: int = 350
    #: Seconds of the window before the switch (cache_ttl needs its "before" in the window).
    lead_s: float = 3.0
    #: Before the switch, wait until the cache hits this share of lookups over WARM_S; the
    #: window then reaches back half as far as the fault ran (at most WARM_S), so its first
    #: third — what the hit ratio is compared with — is the warm cache, however slowly the
    #: requests came on a crowded machine.
    warm_hit_ratio: float = 0.0
    #: More `narrows up` flags for this run's demo (pool_size: a networked database's
    #: latency, without which a one-connection pool is rarely a bottleneck).
    up_args: tuple[str, ...] = ()

    def expected(self, state: dict[str, Any]) -> Expected | None:
        return self.expect(state) if callable(self.expect) else self.expect


@dataclass
class Outcome:
    findings: list[dict[str, Any]]
    stderr: str
    timings: dict[str, float]
    fault_state: dict[str, Any]

    def describe(self, n: int = 8, kind: str | None = None) -> str:
        """The first ``n`` findings; and every finding of ``kind`` (the expected one) with
        its summary, wherever it ranked, so a failure in CI says what the engine saw."""
        rows = []
        for f in self.findings[:n]:
            cause = f["evidence"]["explained_by"]
            rows.append(
                f"  {f['severity']:<8} {f['kind']:<20} {f['subject']} "
                f"score={f['impact']['score']:.2f}" + (f" (explained by {cause})" if cause else "")
            )
        expected = [
            f"  {f['severity']} {f['subject']} score={f['impact']['score']:.3f}: {f['summary']}"
            for f in self.findings
            if f["kind"] == kind
        ]
        if kind is not None:
            rows += [f"{kind} findings: {len(expected)}", *expected]
        took = ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
        return "\n".join([f"findings ({took}):", *rows, self.stderr.strip()[-1500:]])


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _red_since(query_url: str, since: float, **params: str) -> list[dict[str, Any]]:
    """The demo's RED series since ``since``, one bucket (``/api/narrows/red``)."""
    resp = httpx.get(
        f"{query_url}/api/narrows/red",
        params={
            "start": _rfc3339(since),
            "end": _rfc3339(time.time() + 1),
            "step": "3600s",
            "service": DEMO_SERVICE,
            **params,
        },
        timeout=5,
    )
    resp.raise_for_status()
    series: list[dict[str, Any]] = resp.json().get("series") or []
    return series


def served_since(query_url: str, since: float) -> int:
    """Requests the demo served (server spans stored) that started after ``since``."""
    return sum(int(s.get("count", 0)) for s in _red_since(query_url, since, kind="server"))


@contextmanager
def _load(stack: UpStack, case: Case, log_dir: Path) -> Iterator[OwnedProcess]:
    """`narrows load`, exporting its client spans to the stack's collector."""
    argv = narrows_cmd(
        "load",
        "--target", stack.endpoints["demo"],
        "--rate", f"{case.rate:g}",
        "--duration", "0",
        "--max-id", str(case.items),
        "--keys", case.keys,
        "--seed", str(case.seed),
        "--progress", "0",
        # A generator short of CPU falls behind its schedule; bounded, it recovers.
        "--max-inflight", "100",
    )  # fmt: skip
    # The generator sends no telemetry of its own: its client spans are outside what the
    # engine reads (it measures requests from the demo's server span), and on a crowded
    # machine every CPU-second it saves keeps it from falling behind its schedule.
    proc = OwnedProcess.start("load", argv, log_dir, env={"OTEL_SDK_DISABLED": "true"})
    try:
        yield proc
    finally:
        proc.stop()


def hit_ratio_since(query_url: str, since: float) -> float:
    """Share of the demo's cache lookups that hit since ``since``."""
    series = _red_since(query_url, since, operation="cache.get items", groupBy="app.cache.hit")
    counts = {str(s.get("group")): int(s.get("count", 0)) for s in series}
    total = sum(counts.values())
    return counts.get("true", 0) / total if total >= 30 else 0.0


def _wait_served(stack: UpStack, since: float, n: int, load: OwnedProcess, what: str) -> None:
    def enough() -> bool:
        if not stack.proc.alive():
            raise AssertionError(f"narrows up exited:\n{stack.proc.log()[-3000:]}")
        return served_since(stack.endpoints["query"], since) >= n

    # Generous: the rate is ≥ 25/s, the machine may be crowded.
    wait_for(enough, n / 5 + 30, f"{n} requests {what}", load, interval=0.5)


def _set_fault(demo: str, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    resp = httpx.put(f"{demo}/admin/faults/{name}", json=dict(params), timeout=10)
    assert resp.status_code == 200, resp.text
    faults = httpx.get(f"{demo}/admin/faults", timeout=10).json()["faults"]
    return dict(next(f for f in faults if f["name"] == name))


def diagnose_json(data_dir: Path, since_s: float, until: float) -> tuple[list[dict[str, Any]], str]:
    """The real CLI, finding the stack through endpoints.json; stdout must be JSON only.

    ``until`` (Unix seconds) pins the window's end: the CLI takes a second or more to start
    on a crowded machine, and a window ending at *its* now would slide that far past the
    switch, out of the warm "before" the cache_ttl case compares with."""
    result = subprocess.run(
        narrows_cmd(
            "diagnose",
            "--data-dir",
            str(data_dir),
            "--since",
            f"{since_s:.1f}s",
            "--until",
            f"{until:.3f}",
            "--json",
        ),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, f"diagnose failed ({result.returncode}):\n{result.stderr}"
    findings = json.loads(result.stdout)
    assert isinstance(findings, list)
    return findings, result.stderr


def run_case(case: Case, tmp_path: Path) -> Outcome:
    timings: dict[str, float] = {}
    mark = time.monotonic()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        timings[name] = now - mark
        mark = now

    data_dir = tmp_path / "data"
    state: dict[str, Any] = {}
    # No access log: nothing here reads logs, and it is CPU the other runs can use.
    with narrows_up(
        data_dir,
        "--no-dashboard",
        "--seed-items", str(case.items),
        *case.up_args,
        timeout=90,
        env={"NARROWS_ACCESS_LOG": "false"},
    ) as stack:  # fmt: skip
        lap("up")
        with _load(stack, case, tmp_path / "logs") as load:
            _wait_served(stack, time.time() - 5, case.before, load, "before the fault")
            if case.warm_hit_ratio:
                wait_for(
                    lambda: (
                        hit_ratio_since(stack.endpoints["query"], time.time() - WARM_S)
                        >= case.warm_hit_ratio
                    ),
                    60,
                    f"a cache hit ratio of {case.warm_hit_ratio:.0%}",
                    load,
                    interval=0.5,
                )
            lap("warm-up")
            switched = time.time()
            if case.fault is not None:
                state = _set_fault(stack.endpoints["demo"], case.fault, case.params)
            _wait_served(stack, switched, case.after, load, "with the fault on")
            lap("fault")
            until = time.time()
            ran = until - switched
            lead = min(WARM_S, max(case.lead_s, ran / 2)) if case.warm_hit_ratio else case.lead_s
            findings, stderr = diagnose_json(data_dir, ran + lead, until)
            lap("diagnose")
            (tmp_path / "findings.json").write_text(json.dumps(findings, indent=1))
    lap("stop")
    return Outcome(findings, stderr, timings, state)


class Runs:
    """The selected cases, started at once on ``workers`` threads; ``outcome`` waits."""

    def __init__(self, cases: Sequence[Case], tmp: pytest.TempPathFactory, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ground-truth")
        self.started = time.monotonic()
        self._futures: dict[str, Future[Outcome]] = {
            c.id: self._pool.submit(run_case, c, tmp.mktemp(c.id)) for c in cases
        }

    def outcome(self, case: Case) -> Outcome:
        return self._futures[case.id].result()

    def close(self) -> None:
        for f in self._futures.values():
            f.cancel()
        self._pool.shutdown(wait=True)


def workers() -> int:
    """How many runs at once: ``NARROWS_GROUND_TRUTH_WORKERS``, default 2 (more starve the
    demo of CPU on two cores, and a starved loop looks blocked)."""
    raw = os.environ.get("NARROWS_GROUND_TRUTH_WORKERS", "").strip()
    return max(1, int(raw)) if raw.isdigit() else 2


def hot_shard_of(state: dict[str, Any]) -> Expected:
    """hot_keys: the shard owning the hot keys the demo drew (the cases pick seeds whose
    keys all land on one shard)."""
    shards = {shard_for(int(i), SHARDS) for i in state["hot_ids"]}
    assert len(shards) == 1, f"hot keys {state['hot_ids']} span shards {sorted(shards)}"
    return "hot_shard", {"app.shard.id": str(shards.pop())}
