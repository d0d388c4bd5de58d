"""The series limiter admits the first series of each metric, refuses the rest, and a
write-ahead-log replay refuses exactly the same points."""

from __future__ import annotations

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collector.ingest import Kind, decode
from collector.series_limit import SeriesLimiter, drop_series


def _histograms(users: int) -> bytes:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="s")))
    m = rm.scope_metrics.add().metrics.add()
    m.name = "latency"
    m.unit = "s"
    for u in range(users):
        dp = m.histogram.data_points.add()
        dp.attributes.append(KeyValue(key="user", value=AnyValue(string_value=str(u))))
        dp.time_unix_nano = 1
        dp.explicit_bounds.extend([0.1, 1.0])
        dp.bucket_counts.extend([1, 2, 3])
        dp.count = 6
        dp.sum = 2.5
    return req.SerializeToString()


def test_first_series_of_each_metric_are_admitted_the_rest_refused() -> None:
    limiter = SeriesLimiter(max_per_metric=2, max_total=3)
    assert limiter.admit(["a", "a", "a", "a"], [1, 1, 2, 3]) == [3]
    assert limiter.admit(["a", "b", "b"], [1, 10, 11]) == [11]  # total cap of 3
    assert limiter.admit(["a", "b"], [2, 10]) == []  # known series keep flowing
    assert len(limiter) == 3


def test_zero_means_no_limit() -> None:
    limiter = SeriesLimiter(0, 0)
    assert limiter.admit(["a"] * 1000, list(range(1000))) == []


def test_a_histogram_point_is_one_series_and_replay_drops_the_same_points() -> None:
    body = _histograms(5)
    decoded = decode(Kind.OTLP_METRICS_PROTO, body, 1, {})
    points = decoded.tables["metric_points"]
    assert points.num_rows == 5 * 5  # 3 buckets + count + sum per point
    assert len(set(decoded.point_keys)) == 5
    refused = SeriesLimiter(max_per_metric=3, max_total=0).admit(
        points.column("family").to_pylist(), decoded.point_keys
    )
    assert len(refused) == 2
    kept, _, n = drop_series(
        points, decoded.tables["exemplars"], decoded.point_keys, [], set(refused)
    )
    assert (kept.num_rows, n) == (15, 2)
    replayed = decode(Kind.OTLP_METRICS_PROTO, body, 1, {"drop_series": refused})
    assert replayed.tables["metric_points"].equals(kept)
    assert replayed.accepted == 3
