"""Helpers both sources use: time columns, trace samples, frames derived from sampled spans."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

import numpy as np
import pandas as pd

from dashboard.sources.model import Trace
from dashboard.sources.query import TimeWindow, TraceQuery

__all__ = ["pool_wait_from_traces", "sample_traces", "ts_col"]

#: Traces a sample holds at most, and the number of time slices it is spread over.
SAMPLE_SIZE = 200
SLICES = 4
#: A slice is at least this long (a shorter window gets fewer slices).
MIN_SLICE_S = 1.0


class _Fetches(Protocol):
    def fetch_traces(self, query: TraceQuery) -> list[Trace]: ...


def ts_col(ns: pd.Series) -> pd.Series:
    """Unix nanoseconds → UTC timestamps."""
    return pd.to_datetime(pd.to_numeric(ns), unit="ns", utc=True)


def sample_traces(
    source: _Fetches,
    window: TimeWindow,
    size: int = SAMPLE_SIZE,
    *,
    service: str | None = None,
    operation: str | None = None,
    duration_min_ms: float | None = None,
    slices: int = SLICES,
) -> list[Trace]:
    """Up to ``size`` traces spread over the window: the most recent of each time slice, so a
    busy last minute cannot crowd out the rest (a trace API returns newest first). More
    slices make the sample closer to uniform (each slice's newest traces are neighbours in
    time, and share whatever that moment had), for one trace query per slice."""
    slices = max(1, min(slices, int(window.seconds // MIN_SLICE_S)))
    width = (window.end - window.start) / slices
    per_slice = max(1, size // slices)
    seen: dict[str, Trace] = {}
    for i in range(slices):
        start = window.start + width * i
        end = start + width if i < slices - 1 else window.end
        if end - start < timedelta(milliseconds=1):
            continue
        query = TraceQuery(
            TimeWindow(start, end),
            service=service,
            operation=operation,
            duration_min_ms=duration_min_ms,
            limit=per_slice,
        )
        for t in source.fetch_traces(query):
            seen.setdefault(t.trace_id, t)
    return list(seen.values())


def _bucket(start_ns: int, window: TimeWindow) -> pd.Timestamp:
    step_ns = int(window.step_s * 1e9)
    k = (start_ns - window.start_ns) // step_ns
    return pd.Timestamp(window.start_ns + k * step_ns, unit="ns", tz="UTC")


def pool_wait_from_traces(traces: Sequence[Trace], window: TimeWindow) -> pd.DataFrame:
    """ts, shard_id, pool_wait_mean_ms from the ``app.pool.wait_ms`` of sampled shard spans."""
    rows = [
        {
            "ts": _bucket(s.start_ns, window),
            "shard_id": str(s.attributes["app.shard.id"]),
            "wait": float(s.attributes.get("app.pool.wait_ms", np.nan)),
        }
        for t in traces
        for s in t.spans
        if s.attributes.get("app.shard.id") is not None
        and isinstance(s.attributes.get("app.pool.wait_ms"), int | float)
    ]
    if not rows:
        return pd.DataFrame(
            {
                "ts": pd.Series(dtype="datetime64[ns, UTC]"),
                "shard_id": pd.Series(dtype="str"),
                "pool_wait_mean_ms": pd.Series(dtype="float"),
            }
        )
    frame = pd.DataFrame(rows)
    out = frame.groupby(["ts", "shard_id"])["wait"].mean().rename("pool_wait_mean_ms")
    return out.reset_index()
