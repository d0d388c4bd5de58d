"""A scraped Prometheus/OpenMetrics exposition → ``metric_points`` and ``exemplars`` rows.

Parsing is prometheus-client's (the OpenMetrics parser when the target answered
OpenMetrics, the text-format parser otherwise); this module only maps its samples.
"""

from __future__ import annotations

import math
from typing import Any

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from collector.flatten.common import MAX_NS
from collector.flatten.metrics import MetricColumns, PointBuilder

__all__ = ["flatten_exposition"]


def _ns(ts: Any, default: int) -> int:
    if ts is None:
        return default
    if hasattr(ts, "sec"):
        ns = int(ts.sec) * 1_000_000_000 + int(ts.nsec)
    else:
        nanos = float(ts) * 1e9
        if not math.isfinite(nanos):
            raise ValueError(f"timestamp {ts!r} is out of range")
        ns = int(nanos)
    if not 0 <= ns <= MAX_NS:
        raise ValueError(f"timestamp {ts!r} is out of range")
    return ns


def flatten_exposition(
    text: str, content_type: str, job: str, instance: str, scraped_ns: int, received_ns: int
) -> MetricColumns:
    """Every sample as a point labelled ``job``/``instance``; exemplars kept with their ids.

    Raises ``ValueError`` when the parser rejects the exposition.
    """
    openmetrics = "openmetrics" in content_type
    families = list(
        parse_openmetrics(text) if openmetrics else parse_text(text)  # type: ignore[no-untyped-call]
    )
    service = job
    for fam in families:
        if fam.name == "target" or fam.name == "target_info":
            for s in fam.samples:
                service = s.labels.get("service_name", service)
    b = PointBuilder("scrape", received_ns)
    for fam in families:
        typ = fam.type or "unknown"
        for s in fam.samples:
            labels = {"job": job, "instance": instance, **s.labels}
            t = _ns(s.timestamp, scraped_ns)
            b.point(s.name, fam.name, typ, fam.unit or "", service, labels, t, float(s.value))
            ex = s.exemplar
            if ex is not None:
                extra = {k: v for k, v in ex.labels.items() if k not in ("trace_id", "span_id")}
                b.exemplar(
                    s.name,
                    fam.name,
                    service,
                    labels,
                    _ns(ex.timestamp, t),
                    float(ex.value),
                    ex.labels.get("trace_id"),
                    ex.labels.get("span_id"),
                    extra,
                )
    points, exemplars = b.tables()
    return MetricColumns(
        points, exemplars, b.count, point_keys=b.point_keys, exemplar_keys=b.exemplar_keys
    )
