"""Scenario 7 on the demo: random URL paths and methods never widen the telemetry.

Every request goes through the whole demo ASGI app (ops app, mount, instrumented API app,
routing, validation) called directly, so a short run is tens of thousands of requests.
Holds: no 500; ``http.route`` is always one of the app's templates (or absent: one
series for every unmatched path); span names are ``{method} {template}`` or ``{method}``;
the request metric's label sets stay a small fixed set, so the cardinality guard never has
to fold one (its overflow counter stays at zero).
"""

from __future__ import annotations

import asyncio
import json
import random
import string
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from opentelemetry.trace import SpanKind

from demo_app.main import create_app
from demo_app.routes import ROUTES
from demo_app.settings import DemoSettings
from tests.support.demo import SpanCapture

pytestmark = pytest.mark.integration
METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get",
           "BREW", "X" * 40]  # fmt: skip
PREFIXES = ["", "/items", "/items/1", "/items/", "/orders", "/search", "/metrics", "/admin",
            "/healthz", "//", "/..", "/%2e%2e", "/items/-1", "/items/99999999999"]  # fmt: skip
KNOWN = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}


def random_path(rng: random.Random) -> str:
    """A path a scanner or a fuzzer might send: real prefixes, junk segments, encodings,
    unicode, traversal, very long ones."""
    segments = []
    for _ in range(rng.randint(0, 5)):
        kind = rng.random()
        if kind < 0.4:
            segments.append(
                "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(1, 12)))
            )
        elif kind < 0.6:
            segments.append(str(rng.randint(-(10**12), 10**12)))
        elif kind < 0.75:
            segments.append(
                quote("".join(chr(rng.randint(0x20, 0x2FFF)) for _ in range(rng.randint(1, 6))))
            )
        elif kind < 0.85:
            segments.append(rng.choice(["..", ".", "", "%00", "%2F", "{item_id}", "*", "~"]))
        elif kind < 0.95:
            segments.append(rng.choice(["items", "orders", "search", "metrics", "admin", "faults"]))
        else:
            segments.append("a" * rng.randint(500, 4000))
    return rng.choice(PREFIXES) + "/" + "/".join(segments)  # fmt: skip


async def call(app: FastAPI, method: str, path: str, query: str) -> int:
    status = 0

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])  # type: ignore[call-overload]

    raw = path.encode("utf-8", "surrogateescape")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw,
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"demo"), (b"user-agent", b"scanner")],
        "client": ("127.0.0.1", 40000),
        "server": ("demo", 80),
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    return status


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    return create_app(DemoSettings(data_dir=tmp_path, seed_items=100, cache="memory"))


def metric_lines(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def grown_lines(before: str, after: str, name: str) -> list[str]:
    """The series of ``name`` that this run created or moved.

    The Prometheus registry is process-wide: series left by other tests in the same
    process (the micro gateway's routes, say) are not this run's doing.
    """

    def values(text: str) -> dict[str, float]:
        return {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in metric_lines(text, name)
        }

    old = values(before)
    return [
        line
        for line in metric_lines(after, name)
        if float(line.rsplit(" ", 1)[1]) > old.get(line.rsplit(" ", 1)[0], 0.0)
    ]


def run(app: FastAPI, spans: SpanCapture, count: int, seed: int = 7) -> dict[str, object]:
    rng = random.Random(seed)
    statuses: dict[int, int] = {}
    routes: set[str] = set()
    names: set[str] = set()
    before = ""

    async def go() -> str:
        nonlocal before
        async with app.router.lifespan_context(app):
            before = await metrics(app)
            for i in range(count):
                query = rng.choice(["", "ids=1,2", "q=x", "token=" + str(i), "%ff=%fe"])
                status = await call(app, rng.choice(METHODS), random_path(rng), query)
                statuses[status] = statuses.get(status, 0) + 1
                if i % 5000 == 4999:  # read and forget, so memory stays flat on long runs
                    collect()
            collect()
            return await metrics(app)

    def collect() -> None:
        for span in spans.spans():
            if span.kind is not SpanKind.SERVER:
                continue
            attrs = span.attributes or {}
            if "http.route" in attrs:
                routes.add(str(attrs["http.route"]))
            names.add(span.name)
        spans.clear()

    after = asyncio.run(go())
    assert 500 not in statuses, statuses
    assert sum(statuses.values()) == count
    assert routes <= set(ROUTES), routes - set(ROUTES)
    methods = KNOWN | {"_OTHER"}
    for name in names:
        method, _, route = name.partition(" ")
        assert method in methods, name
        assert route == "" or route in ROUTES, name
    duration = grown_lines(before, after, "http_server_request_duration_seconds_count")
    label_routes = {line.split('http_route="', 1)[1].split('"', 1)[0] for line in duration}
    assert label_routes <= {*ROUTES, ""}, label_routes
    # methods × (routes + none) × statuses seen, never the paths: a small fixed set
    assert len(duration) <= len(methods) * (len(ROUTES) + 1) * len(statuses)
    assert len(duration) < 150, len(duration)
    overflow = [line for line in metric_lines(after, "narrows_metric_overflow_total")]
    grown = sum(float(line.rsplit(" ", 1)[1]) for line in overflow) - sum(
        float(line.rsplit(" ", 1)[1])
        for line in metric_lines(before, "narrows_metric_overflow_total")
    )
    assert grown == 0, overflow
    figures = {"scenario": 7, "paths": count, "statuses": statuses, "series": len(duration),
               "routes": sorted(label_routes)}  # fmt: skip
    print("FIGURES " + json.dumps(figures))
    return figures


async def metrics(app: FastAPI) -> str:
    body = bytearray()

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.body":
            body.extend(message.get("body", b""))  # type: ignore[arg-type]

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/metrics", "raw_path": b"/metrics", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"demo")], "client": ("127.0.0.1", 1),
             "server": ("demo", 80)}  # fmt: skip
    await app(scope, receive, send)  # type: ignore[arg-type]
    return body.decode()


def test_random_paths_keep_http_route_a_template_and_label_sets_bounded(
    app: FastAPI, spans: SpanCapture
) -> None:
    run(app, spans, 20_000)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_random_paths(app: FastAPI, spans: SpanCapture) -> None:
    run(app, spans, 200_000, seed=11)
