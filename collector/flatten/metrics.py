"""Metric points → Arrow columns of ``metric_points`` and ``exemplars``.

OTLP metrics are stored the way Prometheus stores them when it receives OTLP: the name
gets its unit suffix (``http.server.request.duration`` + ``s`` →
``http_server_request_duration_seconds``), a monotonic sum gets ``_total``, a histogram
point becomes cumulative ``_bucket{le=...}`` series plus ``_sum`` and ``_count``. So one
query serves metrics whether they were pushed over OTLP or scraped from ``/metrics``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from collector.flatten.common import Rejections, service_of
from collector.flatten.values import any_to_text

__all__ = [
    "EXEMPLAR_SCHEMA",
    "POINT_SCHEMA",
    "MetricColumns",
    "PointBuilder",
    "flatten_metrics",
    "prometheus_name",
]

_LABELS = pa.map_(pa.string(), pa.string())
POINT_SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("family", pa.string()),
        ("type", pa.string()),
        ("unit", pa.string()),
        ("service_name", pa.string()),
        ("labels", _LABELS),
        ("time_ns", pa.int64()),
        ("value", pa.float64()),
        ("source", pa.string()),
        ("received_ns", pa.int64()),
    ]
)
EXEMPLAR_SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("family", pa.string()),
        ("service_name", pa.string()),
        ("labels", _LABELS),
        ("time_ns", pa.int64()),
        ("value", pa.float64()),
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("exemplar_labels", _LABELS),
        ("received_ns", pa.int64()),
    ]
)
_UNITS = {
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "%": "percent",
    "min": "minutes",
    "h": "hours",
}
_INVALID = re.compile(r"[^a-zA-Z0-9_:]")


def prometheus_name(name: str, unit: str, monotonic_sum: bool) -> str:
    """OTLP metric name + unit → the Prometheus family name (Prometheus' OTLP translation)."""
    out = _INVALID.sub("_", name)
    suffix = _UNITS.get(unit, "") if unit and not unit.startswith("{") else ""
    if suffix and not out.endswith("_" + suffix):
        out += "_" + suffix
    if monotonic_sum and not out.endswith("_total"):
        out += "_total"
    return out


def _label_key(key: str) -> str:
    return _INVALID.sub("_", key)


class PointBuilder:
    """Rows for ``metric_points`` and ``exemplars``, appended one sample at a time."""

    def __init__(self, source: str, received_ns: int) -> None:
        self.source = source
        self.received_ns = received_ns
        self.points: dict[str, list[Any]] = {f.name: [] for f in POINT_SCHEMA}
        self.exemplars: dict[str, list[Any]] = {f.name: [] for f in EXEMPLAR_SCHEMA}

    def point(
        self,
        name: str,
        family: str,
        typ: str,
        unit: str,
        service: str | None,
        labels: dict[str, str],
        time_ns: int,
        value: float,
    ) -> None:
        p = self.points
        p["name"].append(name)
        p["family"].append(family)
        p["type"].append(typ)
        p["unit"].append(unit)
        p["service_name"].append(service)
        p["labels"].append(list(labels.items()))
        p["time_ns"].append(time_ns)
        p["value"].append(value)
        p["source"].append(self.source)
        p["received_ns"].append(self.received_ns)

    def exemplar(
        self,
        name: str,
        family: str,
        service: str | None,
        labels: dict[str, str],
        time_ns: int,
        value: float,
        trace_id: str | None,
        span_id: str | None,
        extra: dict[str, str],
    ) -> None:
        e = self.exemplars
        e["name"].append(name)
        e["family"].append(family)
        e["service_name"].append(service)
        e["labels"].append(list(labels.items()))
        e["time_ns"].append(time_ns)
        e["value"].append(value)
        e["trace_id"].append(trace_id)
        e["span_id"].append(span_id)
        e["exemplar_labels"].append(list(extra.items()))
        e["received_ns"].append(self.received_ns)

    @property
    def count(self) -> int:
        return len(self.points["name"])

    def tables(self) -> tuple[pa.Table, pa.Table]:
        return (
            pa.table({f.name: pa.array(self.points[f.name], f.type) for f in POINT_SCHEMA}),
            pa.table({f.name: pa.array(self.exemplars[f.name], f.type) for f in EXEMPLAR_SCHEMA}),
        )


@dataclass
class MetricColumns:
    points: pa.Table
    exemplars: pa.Table
    count: int
    rejected: Rejections = field(default_factory=Rejections)


def _attrs(kvs: Any) -> dict[str, str]:
    return {_label_key(kv.key): any_to_text(kv.value)[1] for kv in kvs}


def _exemplars(
    b: PointBuilder, name: str, family: str, svc: str, labels: dict[str, str], dp: Any
) -> None:
    for ex in dp.exemplars:
        value = ex.as_double if ex.WhichOneof("value") == "as_double" else float(ex.as_int)
        b.exemplar(
            name,
            family,
            svc,
            labels,
            ex.time_unix_nano,
            value,
            ex.trace_id.hex() or None,
            ex.span_id.hex() or None,
            _attrs(ex.filtered_attributes),
        )


def _number(dp: Any) -> float:
    return dp.as_double if dp.WhichOneof("value") == "as_double" else float(dp.as_int)


def flatten_metrics(req: ExportMetricsServiceRequest, received_ns: int) -> MetricColumns:
    """Every data point as Prometheus-style samples (histograms as cumulative buckets)."""
    b = PointBuilder("otlp", received_ns)
    rejected = Rejections()
    n_points = 0
    for rm in req.resource_metrics:
        svc = service_of(rm.resource)
        job_labels = {"job": svc}
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                which = m.WhichOneof("data")
                if which is None:
                    rejected.add("metrics without data")
                    continue
                if which in ("gauge", "sum"):
                    data = getattr(m, which)
                    mono = which == "sum" and data.is_monotonic
                    fam = prometheus_name(m.name, m.unit, mono)
                    typ = "counter" if mono else "gauge"
                    for dp in data.data_points:
                        n_points += 1
                        labels = {**job_labels, **_attrs(dp.attributes)}
                        b.point(fam, fam, typ, m.unit, svc, labels, dp.time_unix_nano, _number(dp))
                        _exemplars(b, fam, fam, svc, labels, dp)
                elif which == "histogram":
                    fam = prometheus_name(m.name, m.unit, False)
                    for dp in m.histogram.data_points:
                        n_points += 1
                        labels = {**job_labels, **_attrs(dp.attributes)}
                        t = dp.time_unix_nano
                        cum = 0
                        bounds = [*dp.explicit_bounds, math.inf]
                        for le, c in zip(bounds, dp.bucket_counts, strict=False):
                            cum += c
                            le_text = "+Inf" if math.isinf(le) else repr(float(le))
                            b.point(
                                f"{fam}_bucket",
                                fam,
                                "histogram",
                                m.unit,
                                svc,
                                {**labels, "le": le_text},
                                t,
                                float(cum),
                            )
                        b.point(
                            f"{fam}_count",
                            fam,
                            "histogram",
                            m.unit,
                            svc,
                            labels,
                            t,
                            float(dp.count),
                        )
                        if dp.HasField("sum"):
                            b.point(f"{fam}_sum", fam, "histogram", m.unit, svc, labels, t, dp.sum)
                        _exemplars(b, f"{fam}_bucket", fam, svc, labels, dp)
                elif which == "exponential_histogram":
                    fam = prometheus_name(m.name, m.unit, False)
                    for dp in m.exponential_histogram.data_points:
                        n_points += 1
                        labels = {**job_labels, **_attrs(dp.attributes)}
                        t = dp.time_unix_nano
                        b.point(
                            f"{fam}_count",
                            fam,
                            "histogram",
                            m.unit,
                            svc,
                            labels,
                            t,
                            float(dp.count),
                        )
                        if dp.HasField("sum"):
                            b.point(f"{fam}_sum", fam, "histogram", m.unit, svc, labels, t, dp.sum)
                        _exemplars(b, f"{fam}_bucket", fam, svc, labels, dp)
                else:  # summary
                    fam = prometheus_name(m.name, m.unit, False)
                    for dp in m.summary.data_points:
                        n_points += 1
                        labels = {**job_labels, **_attrs(dp.attributes)}
                        t = dp.time_unix_nano
                        for qv in dp.quantile_values:
                            b.point(
                                fam,
                                fam,
                                "summary",
                                m.unit,
                                svc,
                                {**labels, "quantile": repr(qv.quantile)},
                                t,
                                qv.value,
                            )
                        b.point(
                            f"{fam}_count", fam, "summary", m.unit, svc, labels, t, float(dp.count)
                        )
                        b.point(f"{fam}_sum", fam, "summary", m.unit, svc, labels, t, dp.sum)
    points, exemplars = b.tables()
    return MetricColumns(points, exemplars, n_points, rejected)
