"""The load generator: closed-loop concurrency steps or open-loop Poisson arrivals.

Built on asyncio + httpx rather than Locust: Locust's open-loop mode does not measure from
the intended send time (coordinated omission), it creates no OpenTelemetry client spans to
propagate, and its gevent monkey-patching does not mix with our asyncio instrumentation.

Each request gets a CLIENT span that starts at its *intended* send time, so queueing in the
generator or the server shows in the trace, and its ``traceparent`` is sent to the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from opentelemetry import baggage, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from demo_app.load_plan import KINDS, KeyChooser, Planned, RequestPlanner, parse_keys
from demo_app.load_stats import LoadReport, StepStats

__all__ = ["LoadConfig", "LoadGenerator"]


@dataclass(frozen=True)
class LoadConfig:
    target: str = "http://127.0.0.1:8000"
    concurrency: tuple[int, ...] = ()  # closed loop when given
    rates: tuple[float, ...] = ()  # open loop otherwise
    step_seconds: float = 20.0
    duration_s: float = 0.0  # overall bound; 0 = none (open loop with one rate: until stopped)
    max_requests: int = 0  # 0 = no bound
    mix: dict[str, float] = field(default_factory=lambda: dict(KINDS))
    keys: str = "uniform"
    max_id: int = 10_000
    timeout_s: float = 10.0
    max_inflight: int = 1_000
    seed: int = 1
    progress_s: float = 5.0
    hot_keys_poll_s: float = 2.0
    #: requests carry baggage app.tenant=tenant-1 … tenant-N (0: no baggage)
    tenants: int = 3

    @property
    def mode(self) -> str:
        return "closed" if self.concurrency else "open"


class LoadGenerator:
    """Runs the steps of one config; ``stop()`` ends the run cleanly (results so far kept)."""

    def __init__(
        self,
        config: LoadConfig,
        *,
        progress: Callable[[str], None] | None = None,
        on_step: Callable[[StepStats], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        # Called with each finished step (`narrows capacity` prints one line per step).
        self._on_step = on_step
        self._rng = random.Random(config.seed)
        # Its own generator, so the request plan of a seed is the same with or without tenants.
        self._tenant_rng = random.Random(f"{config.seed}:tenants")
        self._keys = KeyChooser(config.max_id, parse_keys(config.keys), self._rng)
        self._planner = RequestPlanner(config.mix, self._keys, self._rng)
        self._progress = progress
        self._transport = transport
        self._stop = asyncio.Event()
        self._sent = 0
        self._tracer = trace.get_tracer("narrows.load")
        self._wall0 = time.time()
        self._mono0 = time.monotonic()
        self._stopped_early = False

    def stop(self) -> None:
        self._stopped_early = True
        self._stop.set()

    # --- sending --------------------------------------------------------------------------

    async def _send(
        self, client: httpx.AsyncClient, plan: Planned, intended: float, step: StepStats
    ) -> None:
        """Send one request; latency counts from the intended send time (no coordinated
        omission: time spent waiting to send is the service's backlog too)."""
        span = self._tracer.start_span(
            f"{plan.method} {plan.template}",
            kind=SpanKind.CLIENT,
            start_time=int((self._wall0 + intended - self._mono0) * 1e9),
            attributes={
                "http.request.method": plan.method,
                "url.template": plan.template,
                "url.full": str(client.base_url.join(plan.url)),
                "server.address": client.base_url.host,
                "server.port": client.base_url.port or 80,
            },
        )
        headers: dict[str, str] = {}
        ctx = trace.set_span_in_context(span)
        if self.config.tenants:
            tenant = f"tenant-{self._tenant_rng.randint(1, self.config.tenants)}"
            ctx = baggage.set_baggage("app.tenant", tenant, ctx)
        propagate.inject(headers, context=ctx)
        status: int | None = None
        try:
            # Our span is the client span: keep a library instrumentor from adding another.
            with _no_http_instrumentation():
                response = await client.request(
                    plan.method, plan.url, json=plan.body, headers=headers
                )
            status = response.status_code
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
        except httpx.HTTPError as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
        finally:
            done = time.monotonic()
            span.end(end_time=int((self._wall0 + done - self._mono0) * 1e9))
        step.record(plan.kind, plan.shards, done - intended, status)

    def _budget_left(self) -> bool:
        return not self.config.max_requests or self._sent < self.config.max_requests

    async def _closed_step(self, client: httpx.AsyncClient, step: StepStats, until: float) -> None:
        async def worker() -> None:
            while not self._stop.is_set() and time.monotonic() < until and self._budget_left():
                self._sent += 1
                await self._send(client, self._planner.plan(), time.monotonic(), step)

        await asyncio.gather(*(worker() for _ in range(step.concurrency or 1)))

    async def _open_step(self, client: httpx.AsyncClient, step: StepStats, until: float) -> None:
        rate = step.rate or 1.0
        slots = asyncio.Semaphore(self.config.max_inflight)
        tasks: set[asyncio.Task[None]] = set()

        async def one(plan: Planned, intended: float) -> None:
            async with slots:  # waiting here still counts: latency runs from `intended`
                await self._send(client, plan, intended, step)

        next_at = time.monotonic()
        while not self._stop.is_set() and self._budget_left():
            next_at += self._rng.expovariate(rate)  # Poisson arrivals
            if next_at >= until:
                break
            delay = next_at - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                    break
                except TimeoutError:
                    pass
            self._sent += 1
            task = asyncio.create_task(one(self._planner.plan(), next_at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)

    # --- the run --------------------------------------------------------------------------

    async def _discover(self, client: httpx.AsyncClient) -> None:
        """The shard count (to attribute requests to shards) from /healthz."""
        response = await client.get("/healthz")
        response.raise_for_status()
        self._planner.shards = int(response.json().get("shards", 1))

    async def _poll_hot_keys(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            try:
                response = await client.get("/admin/faults")
                entry: dict[str, Any] = next(
                    (f for f in response.json().get("faults", []) if f.get("name") == "hot_keys"),
                    {},
                )
                if entry.get("active"):
                    self._keys.hot_ids = [int(i) for i in entry.get("hot_ids", [])]
                    self._keys.hot_share = float(entry["params"]["share"])
                else:
                    self._keys.hot_ids = []
            except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
                pass  # keep the last known setting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.hot_keys_poll_s)

    async def _report_progress(self, step: StepStats, label: str, started: float) -> None:
        while self._progress is not None and self.config.progress_s > 0:
            try:
                await asyncio.wait_for(self._stop.wait(), self.config.progress_s)
                return
            except TimeoutError:
                pass
            elapsed = time.monotonic() - started
            s = step.all
            self._progress(
                f"narrows load: {label} {elapsed:5.1f}s  {s.latency.count} requests  "
                f"{s.latency.count / elapsed:.1f}/s  {s.errors} errors  "
                f"p95 {s.latency.percentile(0.95) * 1000:.1f} ms"
            )

    def _steps(self) -> list[StepStats]:
        c = self.config
        if c.concurrency:
            return [StepStats(i + 1, concurrency=n) for i, n in enumerate(c.concurrency)]
        return [StepStats(i + 1, rate=r) for i, r in enumerate(c.rates or (5.0,))]

    def _step_length(self, steps: int) -> float:
        c = self.config
        if c.mode == "open" and steps == 1 and c.duration_s >= 0 and not c.concurrency:
            return c.duration_s or float("inf")  # one rate: --duration (0 = until stopped)
        return c.step_seconds

    async def run(self) -> LoadReport:
        c = self.config
        steps = self._steps()
        report = LoadReport(c.target, c.mode, c.keys, dict(c.mix), 1)
        limits = httpx.Limits(max_connections=max([*c.concurrency, 0]) or c.max_inflight)
        async with httpx.AsyncClient(
            base_url=c.target, timeout=c.timeout_s, limits=limits, transport=self._transport
        ) as client:
            with _no_http_instrumentation():
                await self._discover(client)
            report.shards = self._planner.shards
            poller = asyncio.create_task(_quiet(self._poll_hot_keys(client)))
            run_until = time.monotonic() + c.duration_s if c.duration_s > 0 else float("inf")
            length = self._step_length(len(steps))
            try:
                for step in steps:
                    if (
                        self._stop.is_set()
                        or not self._budget_left()
                        or time.monotonic() >= run_until
                    ):
                        break
                    started = time.monotonic()
                    until = min(started + length, run_until)
                    label = f"step {step.index}/{len(steps)} " + (
                        f"c={step.concurrency}" if step.concurrency else f"rate={step.rate:g}/s"
                    )
                    progress = asyncio.create_task(self._report_progress(step, label, started))
                    try:
                        if step.concurrency:
                            await self._closed_step(client, step, until)
                        else:
                            await self._open_step(client, step, until)
                    finally:
                        progress.cancel()
                        step.elapsed_s = time.monotonic() - started
                        report.steps.append(step)
                    if self._on_step is not None:
                        self._on_step(step)
            finally:
                poller.cancel()
                await asyncio.gather(poller, return_exceptions=True)
        report.stopped_early = self._stopped_early
        return report


async def _quiet(coro: Any) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        await coro


def _no_http_instrumentation() -> Any:
    from opentelemetry.instrumentation.utils import suppress_http_instrumentation

    return suppress_http_instrumentation()
