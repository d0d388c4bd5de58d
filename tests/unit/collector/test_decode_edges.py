"""Values the long fuzz run found answered 500: each is now refused cleanly."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from collector.ingest import Kind, MalformedBody, decode

_LATE = 2**64 - 1  # a valid OTLP fixed64 time, beyond what a signed 64-bit column holds


def test_metric_points_and_exemplars_past_2_63_ns_are_refused_not_a_crash() -> None:
    req = ExportMetricsServiceRequest()
    sm = req.resource_metrics.add().scope_metrics.add()
    g = sm.metrics.add(name="g")
    g.gauge.data_points.add(time_unix_nano=_LATE, as_double=1)
    ok = g.gauge.data_points.add(time_unix_nano=5, as_double=2)
    ok.exemplars.add(time_unix_nano=_LATE, as_double=1)
    decoded = decode(Kind.OTLP_METRICS_PROTO, req.SerializeToString(), 1, {})
    assert decoded.accepted == 1
    assert decoded.rejected.count == 1
    assert decoded.tables["exemplars"].num_rows == 0


def test_log_records_past_2_63_ns_are_refused_not_a_crash() -> None:
    req = ExportLogsServiceRequest()
    scope = req.resource_logs.add().scope_logs.add()
    scope.log_records.add(time_unix_nano=_LATE)
    scope.log_records.add(observed_time_unix_nano=_LATE)
    scope.log_records.add(time_unix_nano=7)
    decoded = decode(Kind.OTLP_LOGS_PROTO, req.SerializeToString(), 1, {})
    assert (decoded.accepted, decoded.rejected.count) == (1, 2)


@pytest.mark.parametrize("kind", [["SERVER"], {"a": 1}, 3])
def test_a_zipkin_kind_that_is_not_a_string_is_malformed(kind: object) -> None:
    span = {"traceId": "a" * 32, "id": "b" * 16, "kind": kind}
    with pytest.raises(MalformedBody, match="kind"):
        decode(Kind.ZIPKIN_JSON, json.dumps([span]).encode(), 1, {})


@pytest.mark.parametrize("stamp", ["1e300", "nan", "-5"])
def test_a_scraped_timestamp_out_of_range_is_malformed(stamp: str) -> None:
    text = f"# TYPE x gauge\nx 1 {stamp}\n# EOF\n".encode()
    meta = {"content_type": "application/openmetrics-text; version=1.0.0", "scraped_ns": 1}
    with pytest.raises(MalformedBody):
        decode(Kind.SCRAPE, text, 1, meta)


def test_spans_and_span_events_past_2_63_ns_are_refused_not_a_crash() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i, (t0, t1, ev) in enumerate([(1, _LATE, None), (1, 2, _LATE), (1, 2, 1)]):
        sp = ss.spans.add(
            trace_id=bytes([1] * 16),
            span_id=bytes([i + 1] * 8),
            start_time_unix_nano=t0,
            end_time_unix_nano=t1,
        )
        if ev is not None:
            sp.events.add(time_unix_nano=ev, name="e")
    decoded = decode(Kind.OTLP_TRACES_PROTO, req.SerializeToString(), 1, {})
    assert (decoded.accepted, decoded.rejected.count) == (1, 2)
