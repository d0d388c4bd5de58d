"""TEST ONLY: answer 503 to a share of ingest requests, to rehearse a retry storm.

``NARROWS_TEST_REFUSE_RATIO=0.3`` refuses 30 % of the requests on the OTLP and Zipkin
ports, for ``NARROWS_TEST_REFUSE_FOR`` (a duration, counted from the first request;
unset = as long as the collector runs), and again every ``NARROWS_TEST_REFUSE_EVERY``
(unset = once): ``FOR=4s EVERY=10s`` is a 4-second storm at the start of every 10 s.
Half of the refused requests are answered before their body is read (the collector was
busy); the other half are stored first and then answered 503 anyway — an acknowledgement
lost on its way back — so the sender's retry repeats data the store already holds, and
the test can check it is counted once.

Never set it in production: it makes the collector lie about what it stored.
"""

from __future__ import annotations

import json
import logging
import random
import time

from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RefusalKnob", "refusal_counter"]

_log = logging.getLogger(__name__)
_BODY = json.dumps({"code": 14, "message": "refused by NARROWS_TEST_REFUSE_RATIO"}).encode()


class RefusalKnob:
    """ASGI middleware in front of a receiver; a pass-through when ``ratio`` is 0."""

    def __init__(
        self,
        app: ASGIApp,
        ratio: float,
        period_s: float,
        every_s: float,
        counter: Counter,
        receiver: str,
        seed: int = 0,
    ) -> None:
        self._app = app
        self._ratio = ratio
        self._period_s = period_s
        self._every_s = every_s
        self._rng = random.Random(seed)
        self._first: float | None = None
        self.refused = 0
        """Requests answered 503 by the knob (each one a retry the sender has to make)."""
        self._counter = counter
        self._receiver = receiver
        if ratio > 0:
            _log.warning(
                "TEST KNOB: refusing %.0f%% of ingest requests with 503%s",
                100 * ratio,
                f" for {period_s:g}s" if period_s else "",
            )

    def _refuse_now(self) -> bool:
        if self._ratio <= 0:
            return False
        now = time.monotonic()
        if self._first is None:
            self._first = now
        since = now - self._first
        if self._every_s:
            since %= self._every_s
        if self._period_s and since > self._period_s:
            return False
        return self._rng.random() < self._ratio

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/healthz" or not self._refuse_now():
            await self._app(scope, receive, send)
            return
        self.refused += 1
        if self.refused % 2:
            self._counter.labels(receiver=self._receiver, stored="false").inc()
            await _answer_503(send)
            return
        # Let the receiver store the request, swallow its 2xx, answer 503.
        status = 0

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status >= 300:
                    await send(message)
            elif status >= 300:
                await send(message)

        await self._app(scope, receive, capture)
        if status < 300:
            self._counter.labels(receiver=self._receiver, stored="true").inc()
            await _answer_503(send)


def refusal_counter(registry: CollectorRegistry) -> Counter:
    """The knob's own counter (one for both receivers), registered only when it is on."""
    return Counter(
        "narrows_test_refused_requests",
        "TEST ONLY: requests answered 503 by NARROWS_TEST_REFUSE_RATIO"
        " (stored=true: stored first, the acknowledgement withheld)",
        ["receiver", "stored"],
        registry=registry,
    )


async def _answer_503(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_BODY)).encode()),
                (b"retry-after", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _BODY})
