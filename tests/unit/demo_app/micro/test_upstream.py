"""``Upstream``: one CLIENT span per attempt, retries, ejection, breaker and timeouts, seen in
the spans, metrics and log events docs/telemetry.md promises. The replicas are httpx mock
transports (no sockets); the timing of real processes is tests/e2e/test_micro.py's job."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.trace import SpanKind
from structlog.testing import capture_logs

from demo_app.faults import ALL_FAULTS, Faults
from demo_app.micro.retry import RetryPolicy
from demo_app.micro.upstream import (
    CircuitOpen,
    Upstream,
    UpstreamConfig,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from instrumentation.testing import TestTelemetry, telemetry_for_tests

Handler = Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]
REPLICAS = (("catalog-0", "http://10.0.0.1:9000"), ("catalog-1", "http://10.0.0.2:9000"))


@pytest.fixture
def t() -> Iterator[TestTelemetry]:
    with telemetry_for_tests() as telemetry:
        yield telemetry


def _instance(request: httpx.Request) -> str:
    return next(i for i, url in REPLICAS if url.endswith(f"{request.url.host}:9000"))


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def _run(
    handler: Handler,
    body: Callable[[Upstream], Awaitable[None]],
    *,
    faults: Faults | None = None,
    **config: object,
) -> None:
    async def main() -> None:
        upstream = Upstream(
            UpstreamConfig("narrows-catalog", REPLICAS, **config),  # type: ignore[arg-type]
            faults=faults,
            transport=httpx.MockTransport(handler),
            seed=1,
        )
        await upstream.start(health_checks=False)
        try:
            await body(upstream)
        finally:
            await upstream.close()

    asyncio.run(main())


def _client_spans(t: TestTelemetry) -> list[dict[str, object]]:
    return [dict(s.attributes or {}) for s in t.spans() if s.kind is SpanKind.CLIENT]


def test_a_refused_attempt_is_retried_on_the_other_replica_each_attempt_its_own_span(
    t: TestTelemetry,
) -> None:
    seen: list[tuple[str, str]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append((_instance(request), request.headers["traceparent"]))
        if len(seen) == 1:
            _refused(request)
        return httpx.Response(200, json={"id": 7})

    async def body(up: Upstream) -> None:
        answer = await up.request("GET", "/items/7", template="/items/{item_id}")
        assert answer.json() == {"id": 7}

    _run(handler, body)
    first, second = _client_spans(t)
    assert first["error.type"] == "ConnectError"
    assert "http.request.resend_count" not in first
    assert second["http.request.resend_count"] == 1
    assert second["http.response.status_code"] == 200
    assert {first["app.upstream.instance"], second["app.upstream.instance"]} == {
        "catalog-0",
        "catalog-1",
    }
    assert [i for i, _ in seen] == [first["app.upstream.instance"], second["app.upstream.instance"]]
    for attrs in (first, second):
        assert attrs["app.upstream.service"] == "narrows-catalog"
        assert attrs["url.template"] == "/items/{item_id}"
        assert str(attrs["url.full"]).endswith("/items/7")
    # The callee's parent is the attempt's own span.
    spans = [s for s in t.spans() if s.kind is SpanKind.CLIENT]
    assert seen[1][1].split("-")[2] == format(spans[1].context.span_id, "016x")
    assert t.sample("app_upstream_retries_total", {"upstream": "narrows-catalog"}) == 1
    assert (
        t.sample(
            "app_upstream_requests_total",
            {
                "upstream": "narrows-catalog",
                "instance": str(first["app.upstream.instance"]),
                "outcome": "error",
            },
        )
        == 1
    )


def test_a_post_that_may_have_arrived_is_not_retried_but_a_refused_one_is(
    t: TestTelemetry,
) -> None:
    calls: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return httpx.Response(503, json={"error": "busy"})

    async def body(up: Upstream) -> None:
        answer = await up.request("POST", "/stock/reserve", template="/stock/reserve", json={})
        assert answer.status_code == 503  # a 5xx answer is returned, not raised

    _run(handler, body)
    assert calls == ["POST"]

    refused: list[int] = []

    async def flaky(request: httpx.Request) -> httpx.Response:
        refused.append(1)
        if len(refused) == 1:
            _refused(request)
        return httpx.Response(200, json={"items": []})

    async def post(up: Upstream) -> None:
        answer = await up.request("POST", "/stock/reserve", template="/stock/reserve", json={})
        assert answer.status_code == 200

    _run(flaky, post)
    assert len(refused) == 2


def test_a_dead_replica_is_ejected_logged_counted_and_then_skipped(t: TestTelemetry) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if _instance(request) == "catalog-0":
            _refused(request)
        return httpx.Response(200, json={})

    picked: list[str] = []

    async def body(up: Upstream) -> None:
        for _ in range(12):
            await up.request("GET", "/items/1", template="/items/{item_id}")
        picked.extend(str(a["app.upstream.instance"]) for a in _client_spans(t)[-4:])

    with capture_logs() as logs:
        _run(handler, body, eject_after=3)
    ejected = [e for e in logs if e["event"] == "upstream ejected"]
    assert len(ejected) == 1
    assert ejected[0]["upstream.service"] == "narrows-catalog"
    assert ejected[0]["upstream.instance"] == "catalog-0"
    assert "connection failures" in ejected[0]["reason"]
    labels = {"upstream": "narrows-catalog", "instance": "catalog-0"}
    assert t.sample("app_upstream_ejections_total", labels) == 1
    assert t.sample("app_upstream_healthy", labels) == 0
    assert t.sample("app_upstream_healthy", {**labels, "instance": "catalog-1"}) == 1
    assert picked == ["catalog-1"] * 4


def test_the_health_checker_outlives_a_check_that_raises_and_a_replica_that_hangs(
    t: TestTelemetry,
) -> None:
    """Each replica has its own checking loop, and nothing a check raises ends it: a bug
    in one check, or a replica whose /healthz never answers, must not stop the others (or
    the same replica, later) from being admitted."""
    calls = {"catalog-0": 0, "catalog-1": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        instance = _instance(request)
        calls[instance] += 1
        if instance == "catalog-0" and calls[instance] == 1:
            raise RuntimeError("a bug in the transport")  # not an httpx error
        if instance == "catalog-1" and calls[instance] == 1:
            await asyncio.sleep(3600)  # hangs past the check's timeout
        return httpx.Response(200, json={"status": "ok"})

    async def main() -> None:
        up = Upstream(
            UpstreamConfig(
                "narrows-catalog", REPLICAS, health_interval_s=0.05, health_timeout_s=0.2
            ),
            transport=httpx.MockTransport(handler),
        )
        with capture_logs() as logs:
            await up.start()
            try:
                for _ in range(100):
                    if all(e.healthy and e.seen for e in up.balancer.endpoints):
                        break
                    await asyncio.sleep(0.05)
            finally:
                await up.close()
        admitted = {e["upstream.instance"] for e in logs if e["event"] == "upstream admitted"}
        assert admitted == {"catalog-0", "catalog-1"}, calls

    asyncio.run(main())


def test_health_checks_readmit_an_ejected_replica(t: TestTelemetry) -> None:
    up_again = False

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/healthz":
            if up_again:
                return httpx.Response(200, json={"status": "ok"})
            _refused(request)
        return httpx.Response(200, json={})

    async def body(up: Upstream) -> None:
        nonlocal up_again
        endpoint = up.balancer.endpoints[0]
        assert not await up.check(endpoint)
        assert not await up.check(endpoint)
        assert not endpoint.healthy
        up_again = True
        assert await up.check(endpoint)
        assert not endpoint.healthy  # two good checks in a row
        assert await up.check(endpoint)
        assert endpoint.healthy

    with capture_logs() as logs:
        _run(handler, body)
    events = [e["event"] for e in logs if e["event"].startswith("upstream ")]
    # both admitted at start (no health checks), then this one out and back
    assert events == ["upstream admitted"] * 2 + ["upstream ejected", "upstream readmitted"]
    labels = {"upstream": "narrows-catalog", "instance": "catalog-0"}
    assert t.sample("app_upstream_healthy", labels) == 1


def test_an_open_circuit_refuses_calls_without_sending_them_and_says_so_on_the_span(
    t: TestTelemetry,
) -> None:
    sent: list[int] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        return httpx.Response(500, json={"error": "bug"})

    tracer = t.telemetry.tracer("test")

    async def body(up: Upstream) -> None:
        for _ in range(20):  # the breaker's minimum number of calls, all failing
            await up.request("GET", "/items/1", template="/items/{item_id}")
        before = len(sent)
        with (
            tracer.start_as_current_span("GET /items/{item_id}", kind=SpanKind.SERVER),
            pytest.raises(CircuitOpen) as refused,
        ):
            await up.request("GET", "/items/1", template="/items/{item_id}")
        assert len(sent) == before
        assert refused.value.status == 503
        assert refused.value.retry_after_s >= 1

    _run(handler, body)
    server = next(s for s in t.spans() if s.kind is SpanKind.SERVER)
    assert [e.name for e in server.events] == ["circuit_open"]
    assert t.sample("app_circuit_state", {"upstream": "narrows-catalog"}) == 2
    rejected = {"upstream": "narrows-catalog", "instance": "", "outcome": "rejected"}
    assert t.sample("app_upstream_requests_total", rejected) == 1


def test_no_call_outlives_its_deadline_however_many_replicas_hang(t: TestTelemetry) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200)

    async def body(up: Upstream) -> None:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await up.request("GET", "/items/1", template="/items/{item_id}")
        assert time.monotonic() - started < 1.5  # deadline 0.6 s, generous margin

    _run(handler, body, attempt_timeout_s=0.25, deadline_s=0.6)
    spans = _client_spans(t)
    assert 1 <= len(spans) <= 3
    assert all(s["error.type"] == "TimeoutError" for s in spans)
    assert t.sample(
        "app_upstream_requests_total",
        {"upstream": "narrows-catalog", "instance": str(spans[0]["app.upstream.instance"]),
         "outcome": "timeout"},
    )  # fmt: skip


def test_no_replica_reachable_is_a_503_after_the_allowed_retries(t: TestTelemetry) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        _refused(request)
        raise AssertionError  # unreachable

    async def body(up: Upstream) -> None:
        with pytest.raises(UpstreamUnavailable, match="no replica answered"):
            await up.request("GET", "/items/1", template="/items/{item_id}")

    _run(handler, body, retry=RetryPolicy(max_retries=2, base_backoff_s=0.001))
    resends = [s.get("http.request.resend_count") for s in _client_spans(t)]
    assert resends == [None, 1, 2]


def test_retry_storm_retries_every_failure_at_once_up_to_its_count(t: TestTelemetry) -> None:
    faults = Faults(shards=4, routes=(), specs=ALL_FAULTS, replicas=2)
    faults.set("retry_storm", {"retries": 5, "backoff_ms": 0})

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "temporarily unavailable"})

    async def body(up: Upstream) -> None:
        answer = await up.request("POST", "/stock/reserve", template="/stock/reserve", json={})
        assert answer.status_code == 503

    _run(handler, body, faults=faults)
    resends = [s.get("http.request.resend_count") for s in _client_spans(t)]
    assert resends == [None, 1, 2, 3, 4, 5]
    spans = sorted(
        (s for s in t.spans() if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0
    )
    gaps = [(b.start_time or 0) - (a.end_time or 0) for a, b in itertools.pairwise(spans)]
    assert max(gaps) < 20_000_000  # back to back: no backoff
    assert t.sample("app_upstream_retries_total", {"upstream": "narrows-catalog"}) == 5


def test_an_abandoned_attempt_is_marked_cancelled_and_not_held_against_the_replica(
    t: TestTelemetry,
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200)

    async def body(up: Upstream) -> None:
        call = asyncio.create_task(up.request("GET", "/items/1", template="/items/{item_id}"))
        await asyncio.sleep(0.05)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert all(e.connect_failures == 0 and e.healthy for e in up.balancer.endpoints)

    _run(handler, body)
    (span,) = [s for s in t.spans() if s.kind is SpanKind.CLIENT]
    assert (span.attributes or {})["error.type"] == "CancelledError"
    assert span.status.status_code.name == "UNSET"
    assert (
        t.sample(
            "app_upstream_requests_total",
            {
                "upstream": "narrows-catalog",
                "instance": str((span.attributes or {})["app.upstream.instance"]),
                "outcome": "error",
            },
        )
        is None
    )


def test_an_abandoned_attempt_finishes_on_its_own_instead_of_being_cancelled_in_the_pool(
    t: TestTelemetry,
) -> None:
    """Cancelling a request inside httpcore's pool can leak its connection slot for good
    (encode/httpcore#1093); a storm of abandoned attempts filled the gateway's pool. So the
    attempt is abandoned, not cancelled: the transport sees it through to its answer."""
    reached: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            reached.append("cancelled")
            raise
        reached.append("answered")
        return httpx.Response(200, json={})

    async def body(upstream: Upstream) -> None:
        call = asyncio.create_task(upstream.request("GET", "/items/1", template="/items/{id}"))
        await asyncio.sleep(0.05)
        call.cancel()  # a sibling call failed: the caller gives this one up
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.sleep(0.3)
        assert reached == ["answered"]
        with pytest.raises(UpstreamTimeout):  # and a timeout abandons it the same way
            await upstream.request("GET", "/items/2", template="/items/{id}")
        await asyncio.sleep(0.3)
        assert "cancelled" not in reached
        assert len(reached) >= 2  # each timed-out attempt (and its retry) answered too

    _run(handler, body, attempt_timeout_s=0.05, deadline_s=0.08)
    (cancelled, *_) = _client_spans(t)
    assert cancelled["error.type"] == "CancelledError"
