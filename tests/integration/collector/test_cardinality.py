"""Scenario 7, cardinality attack: 100k distinct attribute values on metrics and on spans.

Metrics: one gauge with a ``user.id`` label of 100k values. The collector admits the first
10,000 series of the metric (``NARROWS_MAX_SERIES_PER_METRIC``), refuses the points of the
other 90,000 in ``partial_success`` and counts them in
``otelcol_receiver_refused_metric_points_total{reason="series_limit"}``; an ordinary metric
sent afterwards is stored. Spans: 100k spans with 100k distinct values are all stored
(each span is an event, not a series), and grouping by that key answers the busiest 100
groups and counts the 99,900 folded away. The collector's peak RSS stays under budget.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.integration.collector.conftest import PROTOBUF
from tests.support.stack import collector_proc

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DISTINCT = 100_000
PER_REQUEST = 10_000
RSS_BUDGET_MB = 600


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _gauge_request(name: str, values: range, now_ns: int) -> bytes:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(_kv("service.name", "attacker"))
    metric = rm.scope_metrics.add().metrics.add()
    metric.name = name
    for v in values:
        dp = metric.gauge.data_points.add()
        dp.attributes.append(_kv("user.id", f"user-{v}"))
        dp.time_unix_nano = now_ns
        dp.as_double = float(v)
    return req.SerializeToString()


def _span_request(values: range, now_ns: int, rng: random.Random) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(_kv("service.name", "attacker"))
    ss = rs.scope_spans.add()
    for v in values:
        sp = Span(
            trace_id=rng.getrandbits(128).to_bytes(16, "big"),
            span_id=rng.getrandbits(64).to_bytes(8, "big"),
            name="GET /users/{id}",
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=now_ns - 1_000_000 - v,
            end_time_unix_nano=now_ns - v,
        )
        sp.attributes.extend([_kv("user.id", f"user-{v}"), _kv("url.path", f"/users/{v}")])
        ss.spans.append(sp)
    return req.SerializeToString()


def _rss_mb(pid: int, field: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_100k_series_on_one_metric_are_capped_counted_and_memory_stays_bounded(
    data_dir: Path,
) -> None:
    now = time.time_ns()
    with collector_proc(data_dir) as col, httpx.Client(timeout=60) as client:
        refused = 0
        for start in range(0, DISTINCT, PER_REQUEST):
            body = _gauge_request("attack.gauge", range(start, start + PER_REQUEST), now)
            r = client.post(col.otlp_url + "/v1/metrics", content=body, headers=PROTOBUF)
            assert r.status_code == 200, r.text
            answer = ExportMetricsServiceResponse.FromString(r.content)
            refused += answer.partial_success.rejected_data_points
            if answer.partial_success.rejected_data_points:
                assert "NARROWS_MAX_SERIES_PER_METRIC" in answer.partial_success.error_message
        # The points of admitted series keep flowing, and other metrics are unaffected.
        again = _gauge_request("attack.gauge", range(0, 10), now + 1)
        ok = _gauge_request("ordinary.gauge", range(5), now)
        for body in (again, ok):
            r = client.post(col.otlp_url + "/v1/metrics", content=body, headers=PROTOBUF)
            answer = ExportMetricsServiceResponse.FromString(r.content)
            assert answer.partial_success.rejected_data_points == 0
        metrics = client.get(col.query_url + "/metrics").text
        families = {
            m["family"]: m["points"]
            for m in client.get(col.query_url + "/api/narrows/metrics").json()["metrics"]
        }
        peak = _rss_mb(col.proc.proc.pid)
    print(f"cardinality, metrics: {refused} points refused, peak RSS {peak:.0f} MB")
    assert refused == DISTINCT - 10_000
    assert families["attack_gauge"] == 10_000 + 10
    assert families["ordinary_gauge"] == 5
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("otelcol_receiver_refused_metric_points_total")
        and 'reason="series_limit"' in line
    ]
    assert counted, "the refused points are not counted"
    assert float(counted[0].rsplit(" ", 1)[1]) == DISTINCT - 10_000
    assert peak < RSS_BUDGET_MB


def test_100k_distinct_span_attribute_values_are_stored_and_grouping_folds_them(
    data_dir: Path,
) -> None:
    now = time.time_ns()
    rng = random.Random(7)
    with collector_proc(data_dir) as col, httpx.Client(timeout=60) as client:
        for start in range(0, DISTINCT, PER_REQUEST):
            body = _span_request(range(start, start + PER_REQUEST), now, rng)
            r = client.post(col.otlp_url + "/v1/traces", content=body, headers=PROTOBUF)
            assert r.status_code == 200, r.text
        t0 = time.monotonic()
        red = client.get(
            col.query_url + "/api/narrows/red",
            params={"service": "attacker", "groupBy": "user.id", "limit": str(10**9)},
        )
        query_s = time.monotonic() - t0
        stats = client.get(col.query_url + "/api/narrows/stats").json()
        peak = _rss_mb(col.proc.proc.pid)
    print(f"cardinality, spans: red by user.id in {query_s:.2f}s, peak RSS {peak:.0f} MB")
    assert stats["spans"]["count"] == DISTINCT
    assert red.status_code == 200, red.text
    answer = red.json()
    assert len(answer["series"]) == 100, "limit=10^9 must clamp to 100 groups"
    assert answer["truncated"] is True
    assert answer["others"] == {"groups": DISTINCT - 100, "count": DISTINCT - 100}
    assert peak < RSS_BUDGET_MB


@pytest.mark.soak
def test_a_million_series_over_100_metrics_hit_the_total_cap_and_memory_stays_bounded(
    data_dir: Path,
) -> None:
    """100 metrics × 10,000 series: the first 200,000 series in all are admitted
    (``NARROWS_MAX_SERIES``), the other 800,000 points refused and counted."""
    now = time.time_ns()
    refused = 0
    t0 = time.monotonic()
    with collector_proc(data_dir) as col, httpx.Client(timeout=120) as client:
        for m in range(100):
            body = _gauge_request(f"attack.gauge{m}", range(10_000), now)
            r = client.post(col.otlp_url + "/v1/metrics", content=body, headers=PROTOBUF)
            assert r.status_code == 200, r.text
            refused += ExportMetricsServiceResponse.FromString(
                r.content
            ).partial_success.rejected_data_points
        stats = client.get(col.query_url + "/api/narrows/stats").json()
        peak = _rss_mb(col.proc.proc.pid)
    print(
        f"cardinality soak: 1,000,000 series, {refused} refused, "
        f"{stats['metric_points']['count']} stored in {time.monotonic() - t0:.0f}s, "
        f"peak RSS {peak:.0f} MB"
    )
    assert refused == 800_000
    assert stats["metric_points"]["count"] == 200_000
    assert peak < RSS_BUDGET_MB
