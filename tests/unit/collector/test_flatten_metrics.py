"""OTLP metrics → Prometheus-style samples: every data kind, as Prometheus would expose it.

Built from the real protobuf messages the OTLP exporters send; the receiver tests cover
the wire, this covers the shape of what is stored for each kind.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from collector.flatten.metrics import flatten_metrics

T = 1_795_663_800_000_000_000
TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
SPAN = bytes.fromhex("b7ad6b7169203331")


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _request(*metrics: pb.Metric) -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest(
        resource_metrics=[
            pb.ResourceMetrics(
                resource=Resource(attributes=[_kv("service.name", "shop")]),
                scope_metrics=[pb.ScopeMetrics(metrics=list(metrics))],
            )
        ]
    )


def _rows(req: ExportMetricsServiceRequest) -> list[dict[str, Any]]:
    cols = flatten_metrics(req, received_ns=T).points.to_pylist()
    for row in cols:
        row["labels"] = dict(row["labels"])
    return cols


def test_a_monotonic_sum_is_a_counter_and_a_gauge_stays_a_gauge() -> None:
    point = pb.NumberDataPoint(time_unix_nano=T, as_int=7, attributes=[_kv("route", "/x")])
    rows = _rows(
        _request(
            pb.Metric(
                name="http.requests",
                unit="1",
                sum=pb.Sum(data_points=[point], is_monotonic=True, aggregation_temporality=2),
            ),
            pb.Metric(name="queue.depth", gauge=pb.Gauge(data_points=[point])),
            pb.Metric(name="inflight", sum=pb.Sum(data_points=[point], is_monotonic=False)),
        )
    )
    assert [(r["name"], r["type"], r["value"]) for r in rows] == [
        ("http_requests_total", "counter", 7.0),
        ("queue_depth", "gauge", 7.0),
        ("inflight", "gauge", 7.0),
    ]
    assert rows[0]["labels"] == {"job": "shop", "route": "/x"}
    assert rows[0]["service_name"] == "shop"


def test_a_histogram_is_cumulative_buckets_count_sum_and_an_exemplar_on_its_bucket() -> None:
    req = _request(
        pb.Metric(
            name="http.server.duration",
            unit="ms",
            histogram=pb.Histogram(
                data_points=[
                    pb.HistogramDataPoint(
                        time_unix_nano=T,
                        count=6,
                        sum=123.5,
                        explicit_bounds=[10.0, 100.0],
                        bucket_counts=[1, 3, 2],
                        exemplars=[
                            pb.Exemplar(
                                time_unix_nano=T, as_double=88.0, trace_id=TRACE, span_id=SPAN
                            )
                        ],
                    )
                ]
            ),
        )
    )
    rows = _rows(req)
    assert [(r["name"], r["labels"].get("le"), r["value"]) for r in rows] == [
        ("http_server_duration_milliseconds_bucket", "10.0", 1.0),
        ("http_server_duration_milliseconds_bucket", "100.0", 4.0),
        ("http_server_duration_milliseconds_bucket", "+Inf", 6.0),
        ("http_server_duration_milliseconds_count", None, 6.0),
        ("http_server_duration_milliseconds_sum", None, 123.5),
    ]
    assert {r["type"] for r in rows} == {"histogram"}
    exemplars = flatten_metrics(req, received_ns=T).exemplars.to_pylist()
    assert len(exemplars) == 1
    assert exemplars[0]["name"] == "http_server_duration_milliseconds_bucket"
    assert exemplars[0]["trace_id"] == TRACE.hex()
    assert exemplars[0]["span_id"] == SPAN.hex()
    assert exemplars[0]["value"] == 88.0


def test_a_histogram_without_a_sum_has_no_sum_sample() -> None:
    point = pb.HistogramDataPoint(
        time_unix_nano=T, count=1, explicit_bounds=[1.0], bucket_counts=[1, 0]
    )
    rows = _rows(_request(pb.Metric(name="h", histogram=pb.Histogram(data_points=[point]))))
    assert [r["name"] for r in rows] == ["h_bucket", "h_bucket", "h_count"]


def test_an_exponential_histogram_keeps_count_and_sum() -> None:
    point = pb.ExponentialHistogramDataPoint(time_unix_nano=T, count=4, sum=2.5, scale=1)
    rows = _rows(
        _request(
            pb.Metric(
                name="rpc.duration",
                unit="s",
                exponential_histogram=pb.ExponentialHistogram(data_points=[point]),
            )
        )
    )
    assert [(r["name"], r["type"], r["value"]) for r in rows] == [
        ("rpc_duration_seconds_count", "histogram", 4.0),
        ("rpc_duration_seconds_sum", "histogram", 2.5),
    ]


def test_a_summary_is_quantiles_count_and_sum() -> None:
    point = pb.SummaryDataPoint(
        time_unix_nano=T,
        count=10,
        sum=50.0,
        quantile_values=[
            pb.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=4.0),
            pb.SummaryDataPoint.ValueAtQuantile(quantile=0.99, value=9.0),
        ],
    )
    rows = _rows(_request(pb.Metric(name="gc.pause", summary=pb.Summary(data_points=[point]))))
    assert [(r["name"], r["labels"].get("quantile"), r["value"]) for r in rows] == [
        ("gc_pause", "0.5", 4.0),
        ("gc_pause", "0.99", 9.0),
        ("gc_pause_count", None, 10.0),
        ("gc_pause_sum", None, 50.0),
    ]
    assert {r["type"] for r in rows} == {"summary"}


def test_points_timed_out_of_range_and_metrics_without_data_are_refused_and_counted() -> None:
    good = pb.NumberDataPoint(time_unix_nano=T, as_double=1.0)
    late = pb.NumberDataPoint(time_unix_nano=2**63 + 5, as_double=2.0)
    out = flatten_metrics(
        _request(
            pb.Metric(name="g", gauge=pb.Gauge(data_points=[good, late])),
            pb.Metric(name="empty"),
        ),
        received_ns=T,
    )
    assert out.count == 1
    assert out.points.num_rows == 1
    assert out.rejected.reasons == {
        "data points with a time out of range": 1,
        "metrics without data": 1,
    }
