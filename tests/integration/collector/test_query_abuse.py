"""Scenario 7, query API abuse: every parameter of every query route gets hostile values —
``' OR 1=1 --`` and friends, 10 kB strings, ``limit=10^9``, 10-year ranges, ids of the
wrong length, control characters. Each answer is 200 (clamped or empty), 400 naming the
parameter, or 404 — never a 5xx, never a hang — and the store is intact afterwards. Then
Hypothesis throws random parameter sets at every route (``make fuzz`` for longer).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks._payloads import trace_request
from tests.integration.collector.conftest import PROTOBUF
from tests.support.collector import LiveCollector, live_collector

pytestmark = pytest.mark.integration

_NOW = datetime.now(UTC)
_T0 = (_NOW - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
_T1 = _NOW.isoformat().replace("+00:00", "Z")
_FILTERS = ["service", "operation", "kind", "status", "durationMin", "durationMax", "attributes"]
_RANGE = ["start", "end"]
#: route → (parameters a well-formed call needs, every parameter the route reads)
ROUTES: dict[str, tuple[dict[str, str], list[str]]] = {
    "/api/v3/services": ({}, []),
    "/api/v3/operations": ({}, ["service", "spanKind", "span_kind"]),
    "/api/v3/traces/5b8efff798038103d269b633813fc60c": (
        {},
        ["startTime", "endTime", "rawTraces", "start_time", "end_time"],
    ),
    "/api/v3/traces": (
        {"query.startTimeMin": _T0, "query.startTimeMax": _T1},
        [
            "query.serviceName",
            "query.operationName",
            "query.startTimeMin",
            "query.startTimeMax",
            "query.searchDepth",
            "query.num_traces",
            "query.durationMin",
            "query.durationMax",
            "query.rawTraces",
            "query.attributes",
        ],
    ),
    "/api/v3/trace-summaries": (
        {"query.startTimeMin": _T0, "query.startTimeMax": _T1},
        ["query.serviceName", "query.searchDepth", "query.attributes", "query.startTimeMin"],
    ),
    "/api/narrows/red": ({}, [*_RANGE, *_FILTERS, "step", "groupBy", "limit"]),
    "/api/narrows/latency": ({}, [*_RANGE, *_FILTERS, "step", "bounds"]),
    "/api/narrows/operations": ({}, [*_RANGE, *_FILTERS, "traceIds", "order", "limit"]),
    "/api/narrows/compare": (
        {"selection.status": "ERROR"},
        [*_RANGE, *_FILTERS, "keys", "limit", "selection.service", "selection.attributes"],
    ),
    "/api/narrows/logs": ({}, [*_RANGE, "traceId", "spanId", "service", "level", "q", "limit"]),
    "/api/narrows/metrics": ({}, _RANGE),
    "/api/narrows/metrics/series": (
        {"name": "x"},
        [*_RANGE, "name", "fn", "step", "match", "limit"],
    ),
    "/api/narrows/exemplars": ({}, [*_RANGE, "name", "limit"]),
    "/api/narrows/stats": ({}, []),
}
HOSTILE = [
    "' OR 1=1 --",
    '" OR ""="',
    "'; DROP TABLE spans; --",
    "1; SELECT * FROM spans",
    "%' OR '%'='",
    "x" * 10_240,
    "f" * 10_240,
    "1" * 10_240,
    str(10**9),
    "-1",
    "1e308",
    "NaN",
    "2014-01-01T00:00:00Z",
    "\x00\x01\x7f",
    "{}",
    '{"a":' * 500,
    "[" * 10_240,
    "1" * 10_000 + "ms",
    "ünïcødé ☃ \U0001f600",
]
_LONG = int(os.environ.get("NARROWS_FUZZ_SECONDS", "0") or 0)
#: CI tries every parameter with a core of the list (one of each kind); ``make fuzz`` all.
CI_HOSTILE = [
    "' OR 1=1 --",
    "'; DROP TABLE spans; --",
    "x" * 10_240,
    "1" * 10_240,
    str(10**9),
    "\x00\x01\x7f",
    "[" * 10_240,
    "1" * 10_000 + "ms",
]
TEN_YEARS = {"start": "2015-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}
#: Timeout per request: the query deadline (10 s) plus margin; more is a hang.
HANG_S = 15.0


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCollector]:
    with live_collector(tmp_path_factory.mktemp("abuse")) as c:
        now = time.time_ns()
        for seed in range(4):
            r = httpx.post(
                c.otlp_url + "/v1/traces",
                content=trace_request(500, seed=seed, base_ns=now - 120 * 10**9),
                headers=PROTOBUF,
            )
            assert r.status_code == 200
        c.wait_stored()
        yield c


_CLIENT = httpx.Client(timeout=HANG_S)


def _get(c: LiveCollector, path: str, params: dict[str, str]) -> httpx.Response:
    t0 = time.monotonic()
    r = _CLIENT.get(c.query_url + path, params=params)
    elapsed = time.monotonic() - t0
    assert r.status_code in (200, 400, 404), (path, {k: v[:60] for k, v in params.items()}, r.text)
    assert elapsed < HANG_S
    if r.status_code == 400:
        assert r.json()["error"]["message"].startswith("malformed parameter"), r.text
    return r


@pytest.mark.fuzz
def test_every_parameter_of_every_route_withstands_hostile_values(target: LiveCollector) -> None:
    tried = 0
    values = HOSTILE if _LONG else CI_HOSTILE
    for path, (base, names) in ROUTES.items():
        for name in [*names, "unknown"]:
            for value in values:
                _get(target, path, {**base, name: value})
                tried += 1
    print(f"query abuse: {tried} hostile requests, none 5xx")
    stats = _get(target, "/api/narrows/stats", {}).json()
    assert stats["spans"]["count"] == 2000, "the store changed"


def test_injection_matches_nothing(target: LiveCollector) -> None:
    for value in ("' OR 1=1 --", "demo' OR '1'='1"):
        red = _get(target, "/api/narrows/red", {"service": value}).json()
        assert red["series"] == [] or all(s["count"] == 0 for s in red["series"])
        ops = _get(target, "/api/v3/operations", {"service": value}).json()
        assert ops["operations"] == []
    assert _get(target, "/api/narrows/red", {"service": "demo"}).json()["series"]


def test_limits_clamp_and_ranges_are_capped(target: LiveCollector) -> None:
    huge = str(10**9)
    red = _get(target, "/api/narrows/red", {"groupBy": "app.pool.wait_ms", "limit": huge}).json()
    assert len(red["series"]) == 100
    assert red["others"]["groups"] > 0
    logs = _get(target, "/api/narrows/logs", {"limit": huge})
    assert logs.status_code == 200
    deep = _get(
        target,
        "/api/v3/trace-summaries",
        {**ROUTES["/api/v3/traces"][0], "query.searchDepth": huge},
    )
    assert len(deep.json()["summaries"]) <= 1000
    for path in (
        "/api/narrows/red",
        "/api/narrows/latency",
        "/api/narrows/logs",
        "/api/narrows/metrics",
    ):
        r = _get(target, path, TEN_YEARS)
        assert r.status_code == 400
        assert "range" in r.json()["error"]["message"]
    far = _get(
        target,
        "/api/v3/traces",
        {"query.startTimeMin": TEN_YEARS["start"], "query.startTimeMax": TEN_YEARS["end"]},
    )
    assert far.status_code == 400


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v3/traces/" + "a" * 33, 400),
        ("/api/v3/traces/" + "a" * 64, 400),
        ("/api/v3/traces/" + "g" * 32, 400),
        ("/api/v3/traces/" + "0" * 31, 404),
        ("/api/v3/traces/" + "a" * 10_240, 400),
    ],
)
def test_trace_ids_of_the_wrong_length_are_400(
    target: LiveCollector, path: str, status: int
) -> None:
    assert _get(target, path, {}).status_code == status


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/narrows/logs", {"traceId": "a" * 33}),
        ("/api/narrows/logs", {"traceId": "a" * 32, "spanId": "b" * 17}),
        ("/api/narrows/operations", {"traceIds": "a" * 33}),
        ("/api/narrows/operations", {"traceIds": ",".join(["a" * 32] * 1001)}),
        ("/api/narrows/operations", {"traceIds": "xyz"}),
        ("/api/narrows/operations", {"traceIds": "a_b"}),
        ("/api/narrows/operations", {"traceIds": "0x1f"}),
    ],
)
def test_ids_of_the_wrong_length_in_parameters_are_400(
    target: LiveCollector, path: str, params: dict[str, str]
) -> None:
    assert _get(target, path, params).status_code == 400


_PARAM_NAMES = sorted({n for _, names in ROUTES.values() for n in names} | {"x", ""})
_VALUES = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=64),
    st.integers(-(10**20), 10**20).map(str),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.from_regex(r"[0-9]{1,4}(ns|us|ms|s|m|h)", fullmatch=True),
    st.from_regex(r"[0-9a-f]{0,40}", fullmatch=True),
)


@pytest.mark.fuzz
@settings(
    max_examples=3000 if _LONG else 150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.sampled_from(sorted(ROUTES)),
    params=st.dictionaries(st.sampled_from(_PARAM_NAMES), _VALUES, max_size=6),
    keep_base=st.booleans(),
)
def test_random_query_parameters_never_5xx_or_hang(
    target: LiveCollector, path: str, params: dict[str, Any], keep_base: bool
) -> None:
    base = ROUTES[path][0] if keep_base else {}
    _get(target, path, {**base, **params})


def test_a_1_mb_request_line_is_refused_cleanly(target: LiveCollector) -> None:
    """Past what an HTTP client will even build: the server answers 4xx or closes."""
    port = target.settings.query_port
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_S) as sock:
        sock.sendall(b"GET /api/narrows/red?service=" + b"x" * (1 << 20) + b" HTTP/1.1\r\n")
        with contextlib.suppress(OSError):
            sock.sendall(b"Host: 127.0.0.1\r\n\r\n")
        answer = b""
        with contextlib.suppress(OSError):
            answer = sock.recv(200)
    if answer:
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, answer
    assert _get(target, "/api/narrows/stats", {}).status_code == 200
