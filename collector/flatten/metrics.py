"""Metric points → Arrow columns of ``metric_points`` and ``exemplars``.

OTLP metrics are stored the way Prometheus stores them when it receives OTLP: the name
gets its unit suffix (``http.server.request.duration`` + ``s`` →
``http_server_request_duration_seconds``), a monotonic sum gets ``_total``, a histogram
point becomes cumulative ``_bucket{le=...}`` series plus ``_sum`` and ``_count``. So one
query serves metrics whether they were pushed over OTLP or scraped from ``/metrics``.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from collector.flatten.common import MAX_NS, Rejections, service_of
from collector.flatten.values import any_to_text

__all__ = [
    "EXEMPLAR_SCHEMA",
    "POINT_SCHEMA",
    "MetricColumns",
    "PointBuilder",
    "flatten_metrics",
    "prometheus_name",
    "series_key",
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


_NOT_SERIES = ("le", "quantile")
_OUT_OF_RANGE = "data points with a time out of range"


def series_key(family: str, service: str | None, labels: dict[str, str]) -> int:
    """A stable 63-bit id of one series of a family: its service and labels, without the
    ``le``/``quantile`` that split a histogram or summary into rows (one data point, one
    series). Stable across processes, so a decision recorded in the write-ahead log
    (collector/series_limit.py) means the same after a restart."""
    parts = [family, service or ""]
    parts += [f"{k}={v}" for k, v in sorted(labels.items()) if k not in _NOT_SERIES]
    digest = hashlib.blake2b("\x00".join(parts).encode("utf-8", "replace"), digest_size=8)
    return int.from_bytes(digest.digest(), "big") >> 1


class PointBuilder:
    """Rows for ``metric_points`` and ``exemplars``, appended one sample at a time, with the
    series each row belongs to (``point_keys``, ``exemplar_keys``)."""

    def __init__(self, source: str, received_ns: int) -> None:
        self.source = source
        self.received_ns = received_ns
        self.points: dict[str, list[Any]] = {f.name: [] for f in POINT_SCHEMA}
        self.exemplars: dict[str, list[Any]] = {f.name: [] for f in EXEMPLAR_SCHEMA}
        self.point_keys: list[int] = []
        self.exemplar_keys: list[int] = []
        self._keys: dict[tuple[str, str | None, tuple[tuple[str, str], ...]], int] = {}

    def _key(self, family: str, service: str | None, labels: dict[str, str]) -> int:
        # The buckets of one histogram point share their series: hash it once.
        items = tuple(kv for kv in labels.items() if kv[0] not in _NOT_SERIES)
        memo = (family, service, items)
        key = self._keys.get(memo)
        if key is None:
            if len(self._keys) > 100_000:
                self._keys.clear()
            key = self._keys[memo] = series_key(family, service, labels)
        return key

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
        self.point_keys.append(self._key(family, service, labels))

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
        self.exemplar_keys.append(self._key(family, service, labels))

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
    point_keys: list[int] = field(default_factory=list)
    exemplar_keys: list[int] = field(default_factory=list)


def _attrs(kvs: Any) -> dict[str, str]:
    return {_label_key(kv.key): any_to_text(kv.value)[1] for kv in kvs}


def _exemplars(
    b: PointBuilder, name: str, family: str, svc: str, labels: dict[str, str], dp: Any
) -> None:
    for ex in dp.exemplars:
        if ex.time_unix_nano > MAX_NS:
            continue
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


def _emit_number(b: PointBuilder, m: Any, svc: str, labels: dict[str, str], dp: Any) -> None:
    """A gauge or sum point: one sample (monotonic sums are counters)."""
    mono = m.WhichOneof("data") == "sum" and m.sum.is_monotonic
    fam = prometheus_name(m.name, m.unit, mono)
    typ = "counter" if mono else "gauge"
    b.point(fam, fam, typ, m.unit, svc, labels, dp.time_unix_nano, _number(dp))
    _exemplars(b, fam, fam, svc, labels, dp)


def _emit_count_sum(
    b: PointBuilder, fam: str, typ: str, m: Any, svc: str, labels: dict[str, str], dp: Any
) -> None:
    """``_count`` and ``_sum`` (when the point has one), as Prometheus exposes them."""
    t = dp.time_unix_nano
    b.point(f"{fam}_count", fam, typ, m.unit, svc, labels, t, float(dp.count))
    if typ == "summary" or dp.HasField("sum"):
        b.point(f"{fam}_sum", fam, typ, m.unit, svc, labels, t, dp.sum)


def _emit_histogram(b: PointBuilder, m: Any, svc: str, labels: dict[str, str], dp: Any) -> None:
    """Explicit buckets → cumulative ``_bucket`` samples (``le``), then count, sum and
    exemplars (on ``_bucket``, where Prometheus keeps them)."""
    fam = prometheus_name(m.name, m.unit, False)
    cum = 0
    for le, c in zip([*dp.explicit_bounds, math.inf], dp.bucket_counts, strict=False):
        cum += c
        le_text = "+Inf" if math.isinf(le) else repr(float(le))
        bucket_labels = {**labels, "le": le_text}
        b.point(
            f"{fam}_bucket",
            fam,
            "histogram",
            m.unit,
            svc,
            bucket_labels,
            dp.time_unix_nano,
            float(cum),
        )
    _emit_count_sum(b, fam, "histogram", m, svc, labels, dp)
    _exemplars(b, f"{fam}_bucket", fam, svc, labels, dp)


def _emit_exponential(b: PointBuilder, m: Any, svc: str, labels: dict[str, str], dp: Any) -> None:
    """Exponential buckets have no ``le`` form; count, sum and exemplars are kept."""
    fam = prometheus_name(m.name, m.unit, False)
    _emit_count_sum(b, fam, "histogram", m, svc, labels, dp)
    _exemplars(b, f"{fam}_bucket", fam, svc, labels, dp)


def _emit_summary(b: PointBuilder, m: Any, svc: str, labels: dict[str, str], dp: Any) -> None:
    fam = prometheus_name(m.name, m.unit, False)
    for qv in dp.quantile_values:
        quantile_labels = {**labels, "quantile": repr(qv.quantile)}
        b.point(fam, fam, "summary", m.unit, svc, quantile_labels, dp.time_unix_nano, qv.value)
    _emit_count_sum(b, fam, "summary", m, svc, labels, dp)


_EMIT = {
    "gauge": _emit_number,
    "sum": _emit_number,
    "histogram": _emit_histogram,
    "exponential_histogram": _emit_exponential,
    "summary": _emit_summary,
}


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
                emit = _EMIT[which]
                for dp in getattr(m, which).data_points:
                    if dp.time_unix_nano > MAX_NS:
                        rejected.add(_OUT_OF_RANGE)
                        continue
                    n_points += 1
                    emit(b, m, svc, {**job_labels, **_attrs(dp.attributes)}, dp)
    points, exemplars = b.tables()
    return MetricColumns(points, exemplars, n_points, rejected, b.point_keys, b.exemplar_keys)
