"""Prometheus HTTP API client and the PromQL it needs, with every label value escaped.

Counts per time step are differences of the raw counters sampled at the step boundaries
(not ``increase()``, which extrapolates to the window's edges): a request is counted once,
in the step whose end first sees it, so totals agree exactly with a span store at scrape
resolution. A counter reset (a restarted process) counts its new value as the increase.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dashboard.sources.base import SourceError
from dashboard.sources.http import JsonClient
from dashboard.sources.model import Exemplar
from dashboard.sources.query import TimeWindow

__all__ = [
    "PrometheusClient",
    "counter_steps",
    "grid_start",
    "promql_string",
    "quantile_from_buckets",
    "selector",
]

_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def promql_string(value: str) -> str:
    """A PromQL double-quoted string literal holding exactly ``value``.

    PromQL strings use Go's escapes; JSON's (``\\"``, ``\\\\``, ``\\n``, ``\\uXXXX``) are a
    subset of them, so a JSON-encoded string is a safe PromQL literal for any input.
    """
    return json.dumps(value, ensure_ascii=False)


def selector(metric: str, matchers: Mapping[str, str] | None = None, **regex: str) -> str:
    """``metric{label="value",…}``; names are checked, values escaped. ``regex`` adds
    ``=~`` matchers and is for fixed patterns written in this code only."""
    if not _METRIC.match(metric):
        raise ValueError(f"not a metric name: {metric!r}")
    parts = []
    for label, value in (matchers or {}).items():
        if not _LABEL.match(label):
            raise ValueError(f"not a label name: {label!r}")
        parts.append(f"{label}={promql_string(value)}")
    for label, pattern in regex.items():
        parts.append(f"{label}=~{promql_string(pattern)}")
    return f"{metric}{{{','.join(parts)}}}"


def quantile_from_buckets(upper: Sequence[float], cumulative: Sequence[float], q: float) -> float:
    """``histogram_quantile`` on one cumulative histogram (``upper`` ends with +Inf):
    linear interpolation inside the bucket, the lowest bucket starting at 0, and the
    highest finite bound when the rank falls in the +Inf bucket."""
    if not cumulative or cumulative[-1] <= 0:
        return math.nan
    rank = q * cumulative[-1]
    i = int(np.searchsorted(np.asarray(cumulative), rank, side="left"))
    if i >= len(upper) - 1 and math.isinf(upper[-1]):
        return float(upper[-2]) if len(upper) > 1 else math.nan
    lo = 0.0 if i == 0 else float(upper[i - 1])
    below = 0.0 if i == 0 else float(cumulative[i - 1])
    inside = float(cumulative[i]) - below
    if inside <= 0:
        return float(upper[i])
    return lo + (float(upper[i]) - lo) * (rank - below) / inside


def grid_start(window: TimeWindow) -> float:
    """The range query's start (unix s): the window's start moved back so that the last
    evaluation falls exactly on the window's end. A fresh sample just before the end is
    then never missed, whatever the step."""
    end = window.end.timestamp()
    steps = math.ceil((end - window.start.timestamp()) / window.step_s - 1e-9)
    return end - steps * window.step_s


def counter_steps(result: list[dict[str, Any]], window: TimeWindow) -> pd.DataFrame:
    """A ``query_range`` matrix of raw counters → one row per series and step with the
    increase during that step: columns are the series labels, ``ts`` (step start) and
    ``increase``. A series first seen after the window's first step started from zero."""
    rows: list[dict[str, Any]] = []
    first_t = grid_start(window)
    for series in result:
        labels = series.get("metric") or {}
        points = [(float(t), float(v)) for t, v in series.get("values") or []]
        if not points:
            continue
        prev_t, prev_v = points[0]
        if prev_t > first_t + window.step_s / 2:  # born inside the window: it was 0 before
            rows.append({**labels, "t": prev_t - window.step_s, "increase": prev_v})
        for t, v in points[1:]:
            inc = v - prev_v if v >= prev_v else v  # a reset: the new value is the increase
            if inc:
                rows.append({**labels, "t": t - window.step_s, "increase": inc})
            prev_v = v
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["ts", "increase"])
    frame["ts"] = pd.to_datetime(frame.pop("t"), unit="s", utc=True).dt.round("ms")
    return frame


class PrometheusClient:
    """``/api/v1/query``, ``query_range``, ``query_exemplars``; errors become SourceError."""

    def __init__(self, http: JsonClient) -> None:
        self.http = http

    @property
    def base_url(self) -> str:
        return self.http.base_url

    def _data(self, path: str, params: Mapping[str, str]) -> Any:
        resp = self.http.get(path, params)
        try:
            body = resp.json()
        except ValueError:
            raise SourceError(
                self.base_url + path, f"answered {resp.status_code}, not JSON"
            ) from None
        if resp.status_code != 200 or body.get("status") != "success":
            raise SourceError(
                self.base_url + path,
                f"answered {resp.status_code}: {body.get('errorType', '')} {body.get('error', '')}",
            )
        return body.get("data")

    def query_range(self, expr: str, window: TimeWindow) -> list[dict[str, Any]]:
        data = self._data(
            "/api/v1/query_range",
            {
                "query": expr,
                "start": f"{grid_start(window):.3f}",
                "end": f"{window.end.timestamp():.3f}",
                "step": f"{window.step_s:g}",
            },
        )
        return list((data or {}).get("result") or [])

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._data("/api/v1/query", params)
        return list((data or {}).get("result") or [])

    def exemplars(self, expr: str, window: TimeWindow, limit: int = 100) -> list[Exemplar]:
        data = self._data(
            "/api/v1/query_exemplars",
            {
                "query": expr,
                "start": f"{window.start.timestamp():.3f}",
                "end": f"{window.end.timestamp():.3f}",
            },
        )
        out = []
        for series in data or []:
            labels = {str(k): str(v) for k, v in (series.get("seriesLabels") or {}).items()}
            for e in series.get("exemplars") or []:
                ex_labels = e.get("labels") or {}
                trace_id = str(ex_labels.get("trace_id") or ex_labels.get("traceID") or "")
                if not trace_id:
                    continue
                out.append(
                    Exemplar(
                        trace_id=trace_id.lower(),
                        span_id=str(ex_labels.get("span_id") or ""),
                        time_ns=int(float(e.get("timestamp", 0)) * 1e9),
                        value=float(e.get("value", 0.0)),
                        labels=labels,
                    )
                )
        out.sort(key=lambda e: e.time_ns, reverse=True)
        return out[:limit]
