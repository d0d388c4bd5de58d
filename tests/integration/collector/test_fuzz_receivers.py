"""Fuzzing the receivers: random bytes, mutated valid protobuf, huge attribute maps.
Only 2xx/4xx answers, the collector stays up. ``make fuzz`` runs longer
(NARROWS_FUZZ_SECONDS); in CI each property is bounded by max_examples."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks._payloads import trace_request
from tests.support.collector import LiveCollector, live_collector

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]

_LONG = int(os.environ.get("NARROWS_FUZZ_SECONDS", "0") or 0)
_FUZZ = settings(
    max_examples=2000 if _LONG else 60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_VALID = trace_request(16, seed=5)


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCollector]:
    with live_collector(tmp_path_factory.mktemp("fuzz"), max_request_bytes=1 << 20) as c:
        yield c


def _post(c: LiveCollector, url: str, body: bytes, ctype: str) -> int:
    r = httpx.post(url, content=body, headers={"content-type": ctype}, timeout=30)
    assert r.status_code < 500, (r.status_code, r.text[:300])
    return r.status_code


@_FUZZ
@given(
    body=st.binary(max_size=4096),
    path=st.sampled_from(["traces", "metrics", "logs"]),
    ctype=st.sampled_from(["application/x-protobuf", "application/json"]),
)
def test_random_bytes_never_5xx(
    fuzz_target: LiveCollector, body: bytes, path: str, ctype: str
) -> None:
    _post(fuzz_target, f"{fuzz_target.otlp_url}/v1/{path}", body, ctype)


@_FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), max_size=8))
def test_mutated_protobuf_never_5xx(
    fuzz_target: LiveCollector, flips: list[tuple[int, int]]
) -> None:
    body = bytearray(_VALID)
    for pos, value in flips:
        body[pos] = value
    _post(fuzz_target, f"{fuzz_target.otlp_url}/v1/traces", bytes(body), "application/x-protobuf")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)


@_FUZZ
@given(doc=_JSON)
def test_random_json_never_5xx_on_zipkin_and_otlp(fuzz_target: LiveCollector, doc: object) -> None:
    body = json.dumps(doc).encode()
    _post(fuzz_target, f"{fuzz_target.zipkin_url}/api/v2/spans", body, "application/json")
    _post(fuzz_target, f"{fuzz_target.otlp_url}/v1/logs", body, "application/json")


def test_huge_attribute_map_is_accepted_or_refused_cleanly(tmp_path: Path) -> None:
    attrs = [{"key": f"k{i}", "value": {"stringValue": "v" * 50}} for i in range(20_000)]
    doc = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "big",
                                "startTimeUnixNano": "1",
                                "endTimeUnixNano": "2",
                                "attributes": attrs,
                            }
                        ]
                    }
                ]
            }
        ]
    }
    with live_collector(tmp_path) as c:
        status = _post(c, c.otlp_url + "/v1/traces", json.dumps(doc).encode(), "application/json")
        assert status == 200
        c.wait_stored()
        span = c.query("/api/v3/traces/5b8efff798038103d269b633813fc60c").json()
        assert (
            len(span["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"])
            == 20_000
        )
        assert httpx.get(c.query_url + "/healthz").status_code == 200
