"""Calls from one service to the replicas of another: the whole client side in one object.

One ``Upstream`` per callee service holds one ``httpx.AsyncClient`` (its connection pool is
shared by every request of this process), a ``Balancer`` over the replicas, a
``CircuitBreaker``, a ``RetryPolicy`` with its budget, and a health-check task.

Telemetry, as docs/telemetry.md lists it:

* each attempt is one CLIENT span (``{method} {url.template}``, stable HTTP client
  attributes, ``app.upstream.service``/``app.upstream.instance``, and
  ``http.request.resend_count`` on retries), whose context goes out as ``traceparent``
  and ``baggage`` — the callee's SERVER span is its child;
* ``app_upstream_*`` and ``app_circuit_state`` metrics, and the client duration histogram;
* the log events ``upstream admitted`` / ``upstream ejected`` / ``upstream readmitted``;
* a call refused by an open circuit adds the event ``circuit_open`` to the current span.

The contrib httpx instrumentation is suppressed around our calls: the span here is the
client span (one per attempt, with the replica it went to), and health checks leave none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from demo_app.faults import Faults
from demo_app.micro.balancer import Balancer, Endpoint, Transition
from demo_app.micro.breaker import BreakerState, CircuitBreaker
from demo_app.micro.retry import Outcome, RetryBudget, RetryPolicy, is_idempotent
from demo_app.micro.upstream_metrics import UpstreamMetrics, upstream_metrics
from instrumentation import current

__all__ = [
    "CircuitOpen",
    "Upstream",
    "UpstreamConfig",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "no_http_instrumentation",
]

_log = structlog.get_logger("demo_app.upstream")
_debug = logging.getLogger("demo_app.upstream")
_SCOPE = "narrows.demo.upstream"
#: A health check fails this long after its own timeout, whatever the transport does.
HEALTH_GRACE_S = 0.5
#: How long a health check waits for its hook before moving on (the hook keeps running).
HOOK_WAIT_S = 10.0


class UpstreamError(Exception):
    """A call that got no usable answer; ``status`` is what our own client should see."""

    status = 503

    def __init__(self, service: str, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.retry_after_s = retry_after_s


class UpstreamUnavailable(UpstreamError):
    """No replica could be reached (refused, reset) within the attempts allowed."""


class UpstreamTimeout(UpstreamError):
    status = 504


class CircuitOpen(UpstreamError):
    """Not attempted: the breaker is open."""


@dataclass(frozen=True)
class UpstreamConfig:
    service: str
    #: (service.instance.id, base URL) per replica
    endpoints: tuple[tuple[str, str], ...]
    strategy: str = "least_outstanding"
    attempt_timeout_s: float = 2.0
    #: all attempts of one call together
    deadline_s: float = 4.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    health_interval_s: float = 1.0
    health_timeout_s: float = 1.0
    eject_after: int = 3
    breaker_open_s: float = 5.0
    max_connections: int = 200

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ValueError(f"{self.service}: at least one endpoint is needed")
        if not 0 < self.attempt_timeout_s <= self.deadline_s:
            raise ValueError(f"{self.service}: need 0 < attempt_timeout_s <= deadline_s")


@dataclass
class _Attempt:
    outcome: Outcome
    status: int | None = None
    response: httpx.Response | None = None
    error: str = ""


def no_http_instrumentation() -> contextlib.AbstractContextManager[None]:
    """Keep the contrib httpx instrumentation from adding spans (or headers) to a call."""
    from opentelemetry.instrumentation.utils import suppress_http_instrumentation

    manager: contextlib.AbstractContextManager[None] = suppress_http_instrumentation()
    return manager


def _tracer() -> trace.Tracer:
    telemetry = current()
    return telemetry.tracer(_SCOPE) if telemetry is not None else trace.get_tracer(_SCOPE)


#: Called after each good health check with the endpoint and its /healthz JSON.
HealthHook = Callable[[Endpoint, Mapping[str, Any]], Awaitable[None]]


class Upstream:
    def __init__(
        self,
        config: UpstreamConfig,
        *,
        faults: Faults | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        seed: int | None = None,
        on_healthy: HealthHook | None = None,
        metrics: UpstreamMetrics | None = None,
    ) -> None:
        self.config = config
        self.service = config.service
        self.balancer = Balancer(
            [
                Endpoint(instance, url.rstrip("/"), healthy=False, seen=False)
                for instance, url in config.endpoints
            ],
            strategy=config.strategy,
            eject_after=config.eject_after,
        )
        self.breaker = CircuitBreaker(
            window=40,
            min_calls=20,
            failure_ratio=0.75,
            open_s=config.breaker_open_s,
            on_change=self._circuit_changed,
        )
        self.budget = RetryBudget()
        self._faults = faults
        self._transport = transport
        self._rng = random.Random(seed)
        self._on_healthy = on_healthy
        self._metrics = metrics
        self._client: httpx.AsyncClient | None = None
        self._checker: asyncio.Task[None] | None = None
        self._hooks: dict[str, asyncio.Future[None]] = {}

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self, *, health_checks: bool = True) -> None:
        """Open the pool; without health checks every replica is taken as healthy at once."""
        if self._metrics is None:  # by now the app's instrument() has configured telemetry
            self._metrics = upstream_metrics()
        if self._metrics is not None:
            for endpoint in self.balancer.endpoints:
                self._metrics.healthy.labels(self.service, endpoint.instance).set(0)
            self._metrics.circuit.labels(self.service).set(0)
        limits = httpx.Limits(
            max_connections=self.config.max_connections,
            max_keepalive_connections=self.config.max_connections,
        )
        self._client = httpx.AsyncClient(
            limits=limits, timeout=self.config.attempt_timeout_s, transport=self._transport
        )
        if health_checks:
            self._checker = asyncio.create_task(
                self._check_forever(), name=f"health {self.service}"
            )
            return
        for endpoint in self.balancer.endpoints:
            endpoint.seen = endpoint.healthy = True
            self._apply(Transition("admitted", endpoint, "no health checks"))

    async def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            await asyncio.gather(self._checker, return_exceptions=True)
        for hook in self._hooks.values():
            hook.cancel()  # the client closes next: nothing it does could finish
        if self._client is not None:
            await self._client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError(f"upstream {self.service} is not started")
        return self._client

    @property
    def ready(self) -> bool:
        """At least one replica has passed a health check."""
        return self.balancer.healthy_count > 0

    # --- calls --------------------------------------------------------------------------------

    def _policy(self) -> tuple[RetryPolicy, bool]:
        """The policy for this call and whether the retry budget applies."""
        storm = self._faults.aggressive_retries() if self._faults is not None else None
        if storm is None:
            return self.config.retry, True
        # retry_storm simulates a client tuned for "never fail": many retries, at once, on
        # any error and any method, with no budget — each hiccup multiplies the load.
        retries, backoff_s = storm
        return RetryPolicy(retries, backoff_s, backoff_s, retry_all=True), False

    async def request(
        self,
        method: str,
        path: str,
        *,
        template: str,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """One logical call: attempts on replicas until one answers (any status) or the
        policy, the budget or the deadline says stop. A 5xx answer is returned, not raised;
        UpstreamError when no answer came at all."""
        if idempotent is None:
            idempotent = is_idempotent(method)
        if not self.breaker.allow():
            self._count("", "rejected")
            trace.get_current_span().add_event(
                "circuit_open", {"app.upstream.service": self.service}
            )
            raise CircuitOpen(
                self.service, "circuit open", retry_after_s=max(1.0, self.breaker.retry_after_s())
            )
        policy, budgeted = self._policy()
        self.budget.record_call()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.deadline_s
        tried: list[Endpoint] = []
        last: _Attempt | None = None
        ok: bool | None = None
        try:
            for attempt in range(policy.max_retries + 1):
                if last is not None:
                    if not policy.retryable(last.outcome, last.status, idempotent=idempotent):
                        break
                    if budgeted and not self.budget.try_spend():
                        break
                    pause = policy.backoff_s(attempt, self._rng)
                    if loop.time() + pause >= deadline:
                        break
                    if self._metrics is not None:
                        self._metrics.retries.labels(self.service).inc()
                    if pause > 0:
                        await asyncio.sleep(pause)
                remaining = deadline - loop.time()
                if remaining <= 0.001:
                    break
                endpoint = self.balancer.pick(tried)
                tried.append(endpoint)
                last = await self._attempt(
                    endpoint,
                    method,
                    path,
                    template,
                    json,
                    params,
                    attempt,
                    min(remaining, self.config.attempt_timeout_s),
                )
                if last.outcome == "ok":
                    break
            ok = last is not None and last.outcome == "ok"
        finally:
            self.breaker.done(ok)
        if last is None:
            raise UpstreamTimeout(self.service, "no time left for an attempt")
        if last.response is not None:
            return last.response
        if last.outcome == "timeout":
            raise UpstreamTimeout(self.service, f"no answer in time ({last.error})")
        raise UpstreamUnavailable(self.service, f"no replica answered ({last.error})")

    async def _attempt(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        template: str,
        json: Any,
        params: Mapping[str, str] | None,
        resend: int,
        timeout_s: float,
    ) -> _Attempt:
        url = httpx.URL(endpoint.url + path, params=params)
        attrs: dict[str, Any] = {
            "http.request.method": method,
            "server.address": url.host,
            "server.port": url.port or (443 if url.scheme == "https" else 80),
            "url.full": str(url),
            "url.template": template,
            "app.upstream.service": self.service,
            "app.upstream.instance": endpoint.instance,
        }
        if resend:
            attrs["http.request.resend_count"] = resend
        span = _tracer().start_span(f"{method} {template}", kind=SpanKind.CLIENT, attributes=attrs)
        headers: dict[str, str] = {}
        propagate.inject(headers, context=trace.set_span_in_context(span))
        result = _Attempt("cancelled")  # until the call returns or fails
        endpoint.outstanding += 1
        started = time.perf_counter()
        try:
            with no_http_instrumentation(), _as_current(span):
                call = _detached(self.client.request(method, url, json=json, headers=headers))
                async with asyncio.timeout(timeout_s):
                    response = await asyncio.shield(call)
            status = response.status_code
            result = _Attempt("error" if status >= 500 else "ok", status, response, str(status))
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            result = _Attempt("connect", error=type(exc).__name__)
        except (TimeoutError, httpx.TimeoutException) as exc:
            result = _Attempt("timeout", error=type(exc).__name__)
        except httpx.HTTPError as exc:
            result = _Attempt("transport", error=type(exc).__name__)
        finally:
            endpoint.outstanding -= 1
            self._finish(span, endpoint, result, time.perf_counter() - started, url.host, method)
        return result

    def _finish(
        self,
        span: Span,
        endpoint: Endpoint,
        result: _Attempt,
        seconds: float,
        host: str,
        method: str,
    ) -> None:
        """End the attempt's span, count it, feed the balancer — never raising.

        A cancelled attempt (a sibling call failed, our client went away) says nothing
        about the replica: its span says ``error.type=CancelledError`` (it got no answer, by
        our choice) with no ERROR status, and it is neither counted nor held against the
        replica.
        """
        if result.outcome == "cancelled":
            span.set_attribute("error.type", "CancelledError")
            span.end()
            return
        try:
            if result.status is not None:
                span.set_attribute("http.response.status_code", result.status)
            if result.outcome != "ok":
                span.set_attribute("error.type", result.error)
                span.set_status(Status(StatusCode.ERROR, result.error))
            span.end()
            outcome = result.outcome if result.outcome in ("ok", "timeout") else "error"
            self._count(endpoint.instance, outcome)
            if self._metrics is not None:
                self._metrics.observe_client(method, host, result.status, seconds, span)
        except Exception:  # telemetry never breaks the call
            _debug.debug("recording an upstream attempt failed", exc_info=True)
        failed = result.outcome in ("connect", "transport")
        self._apply(self.balancer.on_attempt(endpoint, connection_failed=failed))

    def _count(self, instance: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.requests.labels(self.service, instance, outcome).inc()

    # --- health ---------------------------------------------------------------------------------

    async def _check_forever(self) -> None:
        """One checking loop per replica: a replica whose check or fault reconciliation is
        slow delays only its own next check, never another replica's readmission."""
        await asyncio.gather(*(self._check_one_forever(e) for e in self.balancer.endpoints))

    async def _check_one_forever(self, endpoint: Endpoint) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.check(endpoint)
            except Exception:  # a checker that died would never readmit this replica
                _debug.warning("health check of %s failed", endpoint.instance, exc_info=True)
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.05, self.config.health_interval_s - elapsed))

    async def check(self, endpoint: Endpoint) -> bool:
        """One active health check of ``endpoint`` (``GET /healthz``, no span).

        The check fails after ``health_timeout_s`` (plus a little) whatever the transport
        does: httpx's timeouts bound each phase of a call, not the call, and a check that
        never returned would hold this replica's state where it was. Like an attempt, the
        request runs detached and is abandoned, not cancelled (encode/httpcore #1093).
        """
        body: Mapping[str, Any] = {}
        timeout_s = self.config.health_timeout_s
        try:
            with no_http_instrumentation():
                call = _detached(self.client.get(endpoint.url + "/healthz", timeout=timeout_s))
            async with asyncio.timeout(timeout_s + HEALTH_GRACE_S):
                response = await asyncio.shield(call)
            ok = response.status_code == 200
            if ok:
                parsed = response.json()
                body = parsed if isinstance(parsed, dict) else {}
        except (httpx.HTTPError, ValueError, TimeoutError):
            ok = False
        self._apply(self.balancer.on_check(endpoint, ok))
        if ok and self._on_healthy is not None:
            await self._run_hook(endpoint, body)
        return ok

    async def _run_hook(self, endpoint: Endpoint, body: Mapping[str, Any]) -> None:
        """The after-check hook (the gateway's fault reconciliation), bounded: one at a
        time per replica, awaited for at most HOOK_WAIT_S, then left to finish (its calls
        have their own timeouts) so the next check of this replica is not held up."""
        assert self._on_healthy is not None
        running = self._hooks.get(endpoint.instance)
        if running is not None and not running.done():
            return
        task = asyncio.ensure_future(self._on_healthy(endpoint, body))
        task.add_done_callback(_drop_outcome)
        self._hooks[endpoint.instance] = task
        try:
            async with asyncio.timeout(HOOK_WAIT_S):
                await asyncio.shield(task)
        except TimeoutError:
            _debug.warning("the hook after the health check of %s is slow", endpoint.instance)
        except Exception:
            _debug.warning("after the health check of %s", endpoint.instance, exc_info=True)

    def _apply(self, transition: Transition | None) -> None:
        if transition is None:
            return
        endpoint = transition.endpoint
        if self._metrics is not None:
            self._metrics.healthy.labels(self.service, endpoint.instance).set(
                1 if endpoint.healthy else 0
            )
            if transition.kind == "ejected":
                self._metrics.ejections.labels(self.service, endpoint.instance).inc()
        fields = {
            "upstream.service": self.service,
            "upstream.instance": endpoint.instance,
            "reason": transition.reason,
        }
        if transition.kind == "ejected":
            _log.warning("upstream ejected", **fields)
        else:  # admitted (first good check) or readmitted (back after an ejection)
            _log.info(f"upstream {transition.kind}", **fields)

    def _circuit_changed(self, state: BreakerState) -> None:
        if self._metrics is not None:
            self._metrics.circuit.labels(self.service).set(int(state))
        _log.warning(
            "circuit state changed", **{"upstream.service": self.service}, state=state.name
        )


def _detached(request: Coroutine[Any, Any, httpx.Response]) -> asyncio.Task[httpx.Response]:
    """The request as its own task, for the caller to await through ``asyncio.shield``.

    Cancelling a request inside httpcore's pool — a timeout here, or a sibling call that
    failed — can leave a connection the pool never reclaims (httpcore 1.0.9, encode/httpcore
    #1093); a retry storm's bursts of cancelled attempts filled all ``max_connections``
    slots within seconds, and the gateway timed out every call long after the storm ended.
    So an abandoned attempt is left to finish on its own (the client's own timeout bounds
    it; the connection goes back to the pool), and its outcome is dropped."""
    task = asyncio.ensure_future(request)
    task.add_done_callback(_drop_outcome)
    return task


def _drop_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: an abandoned attempt's failure is nobody's concern


@contextlib.contextmanager
def _as_current(span: Span) -> Iterator[None]:
    """The attempt's span as the current one (log lines inside carry its ids)."""
    with trace.use_span(
        span, end_on_exit=False, record_exception=False, set_status_on_exception=False
    ):
        yield
