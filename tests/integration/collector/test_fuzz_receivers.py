"""Fuzzing every receiver (scenario 7): random bytes, mutated valid protobuf of all three
signals, OTLP/JSON and Zipkin documents of the right shape with wrong values, gzip of all
of these (and broken gzip), any Content-Encoding and Content-Type, scraped expositions;
gzip bombs, alone and many at once. Only 2xx/4xx answers, the collector stays up and
within its memory. ``make fuzz`` runs longer (NARROWS_FUZZ_SECONDS); in CI each property
is bounded by max_examples."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from benchmarks._payloads import trace_request
from collector.ingest import Kind, MalformedBody, decode
from tests.support.collector import LiveCollector, live_collector
from tests.support.stack import collector_proc

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


_CLIENT = httpx.Client(timeout=30)


def _post(
    c: LiveCollector, url: str, body: bytes, ctype: str, headers: dict[str, str] | None = None
) -> int:
    r = _CLIENT.post(url, content=body, headers={"content-type": ctype, **(headers or {})})
    assert r.status_code < 500, (r.status_code, r.text[:300])
    return r.status_code


def _metrics_request() -> bytes:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="f")))
    sm = rm.scope_metrics.add()
    g = sm.metrics.add(name="g", unit="s")
    dp = g.gauge.data_points.add(time_unix_nano=1, as_double=1.5)
    dp.attributes.append(KeyValue(key="k", value=AnyValue(string_value="v")))
    h = sm.metrics.add(name="h", unit="ms")
    hp = h.histogram.data_points.add(time_unix_nano=1, count=3, sum=2.0)
    hp.explicit_bounds.extend([1.0, 5.0])
    hp.bucket_counts.extend([1, 1, 1])
    ex = hp.exemplars.add(time_unix_nano=1, as_double=0.5)
    ex.trace_id = b"\x01" * 16
    ex.span_id = b"\x02" * 8
    return req.SerializeToString()


def _logs_request() -> bytes:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="f")))
    rec = rl.scope_logs.add().log_records.add(time_unix_nano=1, severity_number=9)
    rec.body.string_value = "hello"
    rec.trace_id = b"\x01" * 16
    rec.span_id = b"\x02" * 8
    rec.attributes.append(KeyValue(key="k", value=AnyValue(int_value=3)))
    return req.SerializeToString()


_VALID_BY_SIGNAL = {"traces": _VALID, "metrics": _metrics_request(), "logs": _logs_request()}


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
@given(
    signal=st.sampled_from(sorted(_VALID_BY_SIGNAL)),
    flips=st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 1 << 30)),
    compress=st.booleans(),
)
def test_mutated_protobuf_of_every_signal_never_5xx(
    fuzz_target: LiveCollector,
    signal: str,
    flips: list[tuple[int, int]],
    cut: int | None,
    compress: bool,
) -> None:
    body = bytearray(_VALID_BY_SIGNAL[signal])
    for pos, value in flips:
        body[pos % len(body)] = value
    if cut is not None:
        body = body[: cut % (len(body) + 1)]
    data = gzip.compress(bytes(body)) if compress else bytes(body)
    headers = {"content-encoding": "gzip"} if compress else {}
    url = f"{fuzz_target.otlp_url}/v1/{signal}"
    _post(fuzz_target, url, data, "application/x-protobuf", headers)


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


_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=40)
    | st.from_regex(r"[0-9a-fA-F]{0,40}", fullmatch=True)
)
_ANY = st.recursive(
    _SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


def _maybe(value: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(value, _ANY)


_OTLP_SPAN = st.fixed_dictionaries(
    {},
    optional={
        "traceId": _maybe(st.from_regex(r"[0-9a-f]{32}", fullmatch=True)),
        "spanId": _maybe(st.from_regex(r"[0-9a-f]{16}", fullmatch=True)),
        "parentSpanId": _maybe(st.from_regex(r"[0-9a-f]{0,16}", fullmatch=True)),
        "name": _maybe(st.text(max_size=20)),
        "kind": _maybe(st.integers(-1, 9)),
        "startTimeUnixNano": _maybe(st.integers(0, 2**64 + 5).map(str)),
        "endTimeUnixNano": _maybe(st.integers(0, 2**64 + 5).map(str)),
        "attributes": _maybe(
            st.lists(
                st.fixed_dictionaries(
                    {"key": _maybe(st.text(max_size=10))},
                    optional={
                        "value": _maybe(
                            st.fixed_dictionaries(
                                {},
                                optional={
                                    "stringValue": _ANY,
                                    "intValue": _ANY,
                                    "doubleValue": _ANY,
                                    "boolValue": _ANY,
                                    "arrayValue": _ANY,
                                    "kvlistValue": _ANY,
                                    "bytesValue": _ANY,
                                },
                            )
                        )
                    },
                ),
                max_size=4,
            )
        ),
        "events": _ANY,
        "links": _maybe(
            st.lists(st.fixed_dictionaries({"traceId": _ANY, "spanId": _ANY}), max_size=2)
        ),
        "status": _maybe(st.fixed_dictionaries({}, optional={"code": _ANY, "message": _ANY})),
    },
)


@_FUZZ
@given(spans=st.lists(_OTLP_SPAN, max_size=4), compress=st.booleans())
def test_otlp_json_spans_of_any_values_never_5xx(
    fuzz_target: LiveCollector, spans: list[object], compress: bool
) -> None:
    doc = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": spans}]}]}
    body = json.dumps(doc).encode()
    headers = {"content-encoding": "gzip"} if compress else {}
    data = gzip.compress(body) if compress else body
    _post(fuzz_target, f"{fuzz_target.otlp_url}/v1/traces", data, "application/json", headers)


_ZIPKIN_SPAN = st.fixed_dictionaries(
    {},
    optional={
        "traceId": _maybe(st.from_regex(r"[0-9a-f]{16}|[0-9a-f]{32}", fullmatch=True)),
        "id": _maybe(st.from_regex(r"[0-9a-f]{16}", fullmatch=True)),
        "parentId": _ANY,
        "name": _ANY,
        "kind": _maybe(st.sampled_from(["CLIENT", "SERVER", "PRODUCER", "CONSUMER", "x"])),
        "timestamp": _maybe(st.integers(-5, 2**64)),
        "duration": _maybe(st.integers(-5, 2**64)),
        "tags": _maybe(st.dictionaries(st.text(max_size=8), _ANY, max_size=3)),
        "annotations": _maybe(
            st.lists(st.fixed_dictionaries({"timestamp": _ANY, "value": _ANY}), max_size=2)
        ),
        "localEndpoint": _ANY,
        "remoteEndpoint": _ANY,
        "shared": _ANY,
    },
)


@_FUZZ
@given(spans=st.lists(_ZIPKIN_SPAN, max_size=4))
def test_zipkin_spans_of_any_values_never_5xx(
    fuzz_target: LiveCollector, spans: list[object]
) -> None:
    body = json.dumps(spans).encode()
    _post(fuzz_target, f"{fuzz_target.zipkin_url}/api/v2/spans", body, "application/json")


@_FUZZ
@given(
    encoding=st.one_of(
        st.sampled_from(["gzip", "x-gzip", "deflate", "br", "zstd", "identity", "GZIP", ""]),
        st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=20),
    ),
    ctype=st.one_of(
        st.sampled_from(["application/x-protobuf", "application/json", "text/plain", ""]),
        st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=30),
    ),
    body=st.one_of(
        st.binary(max_size=512),
        st.just(gzip.compress(_VALID)),
        st.just(gzip.compress(_VALID)[:-9]),
        st.just(zlib.compress(_VALID)),
        st.just(gzip.compress(gzip.compress(_VALID))),
    ),
    port=st.sampled_from(["otlp", "zipkin"]),
)
def test_any_encoding_and_type_header_never_5xx(
    fuzz_target: LiveCollector, encoding: str, ctype: str, body: bytes, port: str
) -> None:
    url = (
        f"{fuzz_target.otlp_url}/v1/traces"
        if port == "otlp"
        else f"{fuzz_target.zipkin_url}/api/v2/spans"
    )
    _post(fuzz_target, url, body, ctype, {"content-encoding": encoding})


_EXPOSITION = b"""# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{route="/a",code="200"} 10 1700000000000
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 1 # {trace_id="0af7651916cd43dd8448eb211c80319c"} 0.05 1700000000.1
latency_seconds_bucket{le="+Inf"} 2
latency_seconds_count 2
latency_seconds_sum 0.3
# EOF
"""


@_FUZZ
@given(
    flips=st.lists(
        st.tuples(st.integers(0, len(_EXPOSITION) - 1), st.integers(0, 255)), max_size=6
    ),
    openmetrics=st.booleans(),
    text=st.one_of(st.none(), st.text(max_size=300)),
)
def test_scraped_expositions_decode_or_are_malformed_never_crash(
    flips: list[tuple[int, int]], openmetrics: bool, text: str | None
) -> None:
    """The scrape receiver's parse step: what a target answers is stored or refused as
    malformed (counted as a scrape error), never an exception the scraper does not expect."""
    body = bytearray(_EXPOSITION)
    for pos, value in flips:
        body[pos] = value
    data = text.encode() if text is not None else bytes(body)
    ctype = "application/openmetrics-text; version=1.0.0" if openmetrics else "text/plain"
    meta = {"content_type": ctype, "job": "j", "instance": "i:1", "scraped_ns": 1}
    with contextlib.suppress(MalformedBody):
        decode(Kind.SCRAPE, data, 1, meta)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
def test_many_gzip_bombs_at_once_are_413_and_memory_stays_bounded(data_dir: Path) -> None:
    """Six 128 MiB bombs (about 130 kB each on the wire) at once, on both ports: each is
    cut off at the 64 MiB limit, so the collector's memory never holds more than the limit
    per request in flight, and it answers ordinary requests afterwards."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    zeros = b"\0" * (1 << 20)
    bomb = b"".join(packer.compress(zeros) for _ in range(128)) + packer.flush()
    statuses: list[int] = []
    with collector_proc(data_dir) as col:
        base_mb = _peak_rss_mb(col.proc.proc.pid)

        def fire(url: str) -> None:
            r = httpx.post(
                url,
                content=bomb,
                headers={"content-type": "application/json", "content-encoding": "gzip"},
                timeout=120,
            )
            statuses.append(r.status_code)

        urls = [col.otlp_url + "/v1/traces", col.zipkin_url + "/api/v2/spans"] * 3
        t0 = time.monotonic()
        threads = [threading.Thread(target=fire, args=(u,)) for u in urls]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        elapsed = time.monotonic() - t0
        peak = _peak_rss_mb(col.proc.proc.pid)
        ok = httpx.post(
            col.otlp_url + "/v1/traces",
            content=gzip.compress(_VALID),
            headers={"content-type": "application/x-protobuf", "content-encoding": "gzip"},
        )
    print(f"gzip bombs: {statuses} in {elapsed:.1f}s, RSS {base_mb:.0f} → {peak:.0f} MB")
    assert statuses == [413] * 6
    # The limit is 64 MiB per request; six in flight could hold 384 MiB at worst.
    assert peak - base_mb < 6 * 64 + 64
    assert ok.status_code == 200


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
