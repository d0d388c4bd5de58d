"""The load generator: closed-loop concurrency steps or open-loop Poisson arrivals.

Built on asyncio + httpx rather than Locust: Locust's open-loop mode does not measure from
the intended send time (coordinated omission), it creates no OpenTelemetry client spans to
propagate, and its gevent monkey-patching does not mix with our asyncio instrumentation.

Each request gets a CLIENT span that starts at its *intended* send time, so queueing in the
generator or the server shows in the trace, and its ``traceparent`` is sent to the demo.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import random
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from demo_app.load_stats import LoadReport, StepStats
from demo_app.schema import WORDS, make_item
from demo_app.shards import shard_for

__all__ = ["KINDS", "KeyChooser", "LoadConfig", "LoadGenerator", "parse_keys", "parse_mix"]

#: Request kinds and the default mix.
KINDS = {"get": 60.0, "multiget": 15.0, "search": 10.0, "put": 10.0, "checkout": 5.0}
MAX_ZIPF_KEYS = 2_000_000


def parse_mix(text: str) -> dict[str, float]:
    """``get=70,put=5,…`` → weights (kinds not named get 0)."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in KINDS:
            raise ValueError(
                f"--mix: {part!r} is not KIND=WEIGHT with KIND one of {', '.join(KINDS)}"
            )
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"--mix: weight of {name} must be a number, got {value!r}") from None
        if not 0 <= weight < float("inf"):
            raise ValueError(f"--mix: weight of {name} must be ≥ 0")
        mix[name.strip()] = weight
    if sum(mix.values()) <= 0:
        raise ValueError("--mix: at least one weight must be positive")
    return mix


def parse_keys(text: str) -> float | None:
    """``uniform`` → None; ``zipf:S`` → the exponent S (> 0)."""
    if text == "uniform":
        return None
    name, _, exponent = text.partition(":")
    try:
        s = float(exponent)
    except ValueError:
        s = -1.0
    if name != "zipf" or not 0 < s <= 10:
        raise ValueError(f"--keys must be uniform or zipf:S with 0 < S ≤ 10, got {text!r}")
    return s


class KeyChooser:
    """Item ids 1 … max_id, uniform or Zipf(s) by rank; the hot_keys fault overrides a share."""

    def __init__(self, max_id: int, zipf_s: float | None, rng: random.Random) -> None:
        self.max_id = max_id
        self._rng = rng
        self._cum: array[float] | None = None
        if zipf_s is not None:
            if max_id > MAX_ZIPF_KEYS:
                raise ValueError(f"--max-id ≤ {MAX_ZIPF_KEYS} with zipf keys")
            weights = (1.0 / k**zipf_s for k in range(1, max_id + 1))
            self._cum = array("d", itertools.accumulate(weights))
        self.hot_ids: list[int] = []
        self.hot_share = 0.0

    def pick(self) -> int:
        # hot_keys (read from the service): a small set of keys gets most of the traffic.
        if self.hot_ids and self._rng.random() < self.hot_share:
            return self._rng.choice(self.hot_ids)
        if self._cum is None:
            return self._rng.randint(1, self.max_id)
        x = self._rng.random() * self._cum[-1]
        return min(bisect.bisect_left(self._cum, x) + 1, self.max_id)


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

    @property
    def mode(self) -> str:
        return "closed" if self.concurrency else "open"


@dataclass(frozen=True)
class Planned:
    kind: str
    method: str
    template: str
    url: str
    body: dict[str, Any] | None
    shards: tuple[int, ...]


class LoadGenerator:
    """Runs the steps of one config; ``stop()`` ends the run cleanly (results so far kept)."""

    def __init__(
        self,
        config: LoadConfig,
        *,
        progress: Callable[[str], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._keys = KeyChooser(config.max_id, parse_keys(config.keys), self._rng)
        self._kinds = list(config.mix)
        self._weights = list(itertools.accumulate(config.mix.values()))
        self._progress = progress
        self._transport = transport
        self._stop = asyncio.Event()
        self._sent = 0
        self._shards = 1
        self._tracer = trace.get_tracer("narrows.load")
        self._wall0 = time.time()
        self._mono0 = time.monotonic()
        self._stopped_early = False

    def stop(self) -> None:
        self._stopped_early = True
        self._stop.set()

    # --- planning requests ----------------------------------------------------------------

    def _plan(self) -> Planned:
        kind = self._kinds[
            bisect.bisect_right(self._weights, self._rng.random() * self._weights[-1])
        ]
        n = self._shards
        if kind == "get":
            key = self._keys.pick()
            return Planned(
                kind, "GET", "/items/{item_id}", f"/items/{key}", None, (shard_for(key, n),)
            )
        if kind == "put":
            key = self._keys.pick()
            item = make_item(key)
            body = {
                "name": item.name,
                "price": item.price,
                "stock": self._rng.randint(50, 500),
                "text": item.text,
            }
            return Planned(
                kind, "PUT", "/items/{item_id}", f"/items/{key}", body, (shard_for(key, n),)
            )
        if kind == "multiget":
            ids = sorted({self._keys.pick() for _ in range(5)})
            shards = tuple(sorted({shard_for(k, n) for k in ids}))
            return Planned(
                kind, "GET", "/items", f"/items?ids={','.join(map(str, ids))}", None, shards
            )
        if kind == "search":
            word = self._rng.choice(WORDS)
            return Planned(
                kind, "GET", "/search", f"/search?q={word}&limit=10", None, tuple(range(n))
            )
        ids = sorted({self._keys.pick() for _ in range(self._rng.randint(1, 3))})
        body = {"items": [{"id": k, "quantity": 1} for k in ids], "customer": "narrows-load"}
        shards = tuple(sorted({shard_for(k, n) for k in ids}))
        return Planned(kind, "POST", "/orders", "/orders", body, shards)

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
        propagate.inject(headers, context=trace.set_span_in_context(span))
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
                await self._send(client, self._plan(), time.monotonic(), step)

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
            task = asyncio.create_task(one(self._plan(), next_at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)

    # --- the run --------------------------------------------------------------------------

    async def _discover(self, client: httpx.AsyncClient) -> None:
        """The shard count (to attribute requests to shards) from /healthz."""
        response = await client.get("/healthz")
        response.raise_for_status()
        self._shards = int(response.json().get("shards", 1))

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
            report.shards = self._shards
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
