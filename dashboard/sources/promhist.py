"""Prometheus histogram and counter steps → the frames the pages read (pure pandas).

Input rows come from ``counter_steps``: the series labels (``le`` for bucket series),
``ts`` and ``increase``. Bucket counters are cumulative (``le`` = "at most"), so each
step's per-bucket counts are differences between neighbouring bounds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd

from dashboard.sources.model import CACHE_FRAME, RED_FRAME
from dashboard.sources.prometheus import quantile_from_buckets

__all__ = ["HTTP_METRIC", "cache_frame", "histogram_frame", "red_frame"]

HTTP_METRIC = "http_server_request_duration_seconds"


def _groups(frame: pd.DataFrame, labels: Sequence[str]) -> pd.Series:
    if not labels:
        return pd.Series("(all)", index=frame.index)
    parts = [
        frame.get(label, pd.Series("", index=frame.index)).fillna("").astype(str)
        for label in labels
    ]
    out = parts[0]
    for p in parts[1:]:
        out = out + " " + p
    return out


def _cumulative(steps: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    """Rows ``index`` × columns bucket upper bounds (s, ascending, +Inf last), cumulative."""
    frame = steps.assign(le_f=steps["le"].astype(float))
    cum = frame.pivot_table(index=index, columns="le_f", values="increase", aggfunc="sum")
    cum = cum.reindex(sorted(cum.columns), axis=1).fillna(0.0)
    # A reset between two scrapes can leave a bucket below a lower one: keep it monotonic.
    return cum.cummax(axis=1)


def red_frame(
    steps: pd.DataFrame,
    sums: pd.DataFrame,
    group_labels: Sequence[str],
    step_s: float,
    limit: int,
) -> pd.DataFrame:
    """RED_FRAME rows from histogram bucket steps (+ ``_sum`` steps for the mean)."""
    if steps.empty or "le" not in steps.columns:
        return pd.DataFrame(columns=list(RED_FRAME))
    steps = steps.assign(group=_groups(steps, group_labels))
    cum = _cumulative(steps, ["group", "ts"])
    upper = [float(u) for u in cum.columns]
    inf = steps[steps["le"].astype(float) == math.inf]
    status = inf.get("http_response_status_code", pd.Series("", index=inf.index)).fillna("")
    errors = inf[status.astype(str).str.startswith("5")].groupby(["group", "ts"])["increase"].sum()
    total_s = pd.Series(dtype=float)
    if not sums.empty:
        sums = sums.assign(group=_groups(sums, group_labels))
        total_s = sums.groupby(["group", "ts"])["increase"].sum()
    rows = []
    for key, row in cum.iterrows():
        group, ts = cast(tuple[str, pd.Timestamp], key)
        values = [float(v) for v in row.to_numpy(dtype=float)]
        count = float(values[-1])
        if count <= 0:
            continue
        err = float(errors.get((group, ts), 0.0))
        rows.append(
            {
                "group": group,
                "ts": ts,
                "count": round(count),
                "rate": count / step_s,
                "errors": round(err),
                "error_rate": err / count,
                "mean_ms": 1000.0 * float(total_s.get((group, ts), math.nan)) / count,
                "p50_ms": 1000.0 * quantile_from_buckets(upper, values, 0.5),
                "p95_ms": 1000.0 * quantile_from_buckets(upper, values, 0.95),
                "p99_ms": 1000.0 * quantile_from_buckets(upper, values, 0.99),
            }
        )
    frame = pd.DataFrame(rows, columns=list(RED_FRAME))
    busiest = frame.groupby("group")["count"].sum().sort_values(ascending=False).index[:limit]
    frame = frame[frame["group"].isin(busiest)]
    return frame.sort_values(["group", "ts"]).reset_index(drop=True)


def histogram_frame(steps: pd.DataFrame, over_time: bool) -> tuple[tuple[float, ...], pd.DataFrame]:
    """(finite bounds in ms, long frame ts/bucket/low_ms/high_ms/count) from bucket steps."""
    columns = ["ts", "bucket", "low_ms", "high_ms", "count"]
    if steps.empty or "le" not in steps.columns:
        return (), pd.DataFrame(columns=columns)
    if not over_time:  # one row for the whole window (pivot_table drops NaT keys)
        steps = steps.assign(ts=pd.Series(0, index=steps.index))
    cum = _cumulative(steps, ["ts"])
    upper_s = [float(u) for u in cum.columns]
    bounds = tuple(1000.0 * u for u in upper_s if math.isfinite(u))
    edges = (0.0, *bounds, math.inf)
    rows = []
    for ts, row in cum.iterrows():
        counts = np.diff(np.concatenate([[0.0], row.to_numpy(dtype=float)]))
        for i, c in enumerate(counts):
            if c > 0:
                rows.append(
                    {
                        "ts": ts,
                        "bucket": i,
                        "low_ms": edges[i],
                        "high_ms": edges[i + 1],
                        "count": round(c),
                    }
                )
    frame = pd.DataFrame(rows, columns=columns)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True) if over_time else pd.NaT
    return bounds, frame


def cache_frame(steps: pd.DataFrame) -> pd.DataFrame:
    """CACHE_FRAME rows from ``app_cache_lookups_total`` steps (labels cache, result)."""
    if steps.empty or "result" not in steps.columns:
        return pd.DataFrame(columns=list(CACHE_FRAME))
    wide = steps.pivot_table(
        index=["ts", "cache"], columns="result", values="increase", aggfunc="sum"
    ).fillna(0.0)
    out = pd.DataFrame(index=wide.index)
    for name, result in (("hits", "hit"), ("misses", "miss"), ("errors", "error")):
        out[name] = wide[result].round().astype(int) if result in wide.columns else 0
    return out.reset_index()[list(CACHE_FRAME)]
