"""NarrowsSource: the Narrows collector's query API (Jaeger API v3 + Narrows aggregates).

Every question is answered inside the collector's database (docs/query-api.md); only the
pool-wait column falls back to sampled traces when no scraped pool-wait metric exists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import numpy as np
import pandas as pd

from dashboard.sources.http import JsonClient
from dashboard.sources.jaeger import JaegerV3Client
from dashboard.sources.model import (
    CACHE_FRAME,
    RED_FRAME,
    SHARD_FRAME,
    Exemplar,
    Frame,
    Freshness,
    Histogram,
    LogRecord,
    Operation,
    Trace,
    TraceSummary,
)
from dashboard.sources.query import (
    LogQuery,
    SpanFilter,
    TimeWindow,
    TraceQuery,
    go_duration,
    rfc3339,
)
from dashboard.sources.sampled import COMPARE_FRAME, OPS_FRAME, RANK_FRAME
from dashboard.sources.shared import pool_wait_from_traces, sample_traces, ts_col

__all__ = ["NarrowsSource"]

_FN = ("raw", "last", "rate", "increase")


def _window(window: TimeWindow, step: bool = True) -> dict[str, str]:
    out = {"start": rfc3339(window.start), "end": rfc3339(window.end)}
    if step:
        out["step"] = f"{int(window.step_s)}s"
    return out


def filter_params(filt: SpanFilter, prefix: str = "") -> dict[str, str]:
    """A SpanFilter as the collector's span-filter parameters (docs/query-api.md)."""
    out: dict[str, str] = {}
    for name, value in (
        ("service", filt.service),
        ("operation", filt.operation),
        ("kind", filt.kind),
        ("status", filt.status),
    ):
        if value:
            out[prefix + name] = value
    if filt.duration_min_ms is not None:
        out[prefix + "durationMin"] = go_duration(filt.duration_min_ms)
    if filt.duration_max_ms is not None:
        out[prefix + "durationMax"] = go_duration(filt.duration_max_ms)
    if filt.attributes:
        out[prefix + "attributes"] = json.dumps(dict(filt.attributes))
    return out


class NarrowsSource:
    """Talks HTTP only; every failure becomes a SourceError naming the URL."""

    kind = "narrows"

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = JsonClient(base_url, timeout_s=timeout_s, headers=headers, transport=transport)
        self.jaeger = JaegerV3Client(self.http)
        self.base_url = self.http.base_url

    def endpoints(self) -> dict[str, str]:
        return {"Narrows collector": self.base_url}

    def _get(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return self.http.get_json(path, params) or {}

    # --- traces (Jaeger API v3) ---
    def services(self) -> list[str]:
        return self.jaeger.services()

    def operations(self, service: str, kind: str | None = None) -> list[Operation]:
        return self.jaeger.operations(service, kind)

    def find_traces(self, query: TraceQuery) -> list[TraceSummary]:
        return self.jaeger.summaries(query)

    def fetch_traces(self, query: TraceQuery) -> list[Trace]:
        return self.jaeger.traces(query)

    def get_trace(self, trace_id: str) -> Trace | None:
        return self.jaeger.trace(trace_id)

    # --- aggregates ---
    def red(
        self, window: TimeWindow, filt: SpanFilter, group_by: str | None = None, limit: int = 10
    ) -> Frame:
        params = {**_window(window), **filter_params(filt), "limit": str(limit)}
        if group_by:
            params["groupBy"] = group_by
        body = self._get("/api/narrows/red", params)
        rows = [
            {"group": "(none)" if s.get("group") is None else str(s["group"]), **p}
            for s in body.get("series") or []
            for p in s.get("points") or []
        ]
        frame = pd.DataFrame(rows)
        if frame.empty:
            return Frame(pd.DataFrame(columns=list(RED_FRAME)))
        frame["ts"] = ts_col(frame["t_ns"])
        note = "only the busiest groups are shown" if body.get("truncated") else None
        return Frame(frame[list(RED_FRAME)], note)

    def latency(self, window: TimeWindow, filt: SpanFilter, *, over_time: bool = True) -> Histogram:
        params = {**_window(window, step=over_time), **filter_params(filt)}
        body = self._get("/api/narrows/latency", params)
        bounds = tuple(float(b) for b in body.get("bounds_ms") or [])
        rows_in = body.get("rows") if over_time else [{"t_ns": None, "counts": body.get("counts")}]
        edges = (0.0, *bounds, float("inf"))
        rows = [
            {
                "ts": r.get("t_ns"),
                "bucket": i,
                "low_ms": edges[i],
                "high_ms": edges[i + 1],
                "count": int(c),
            }
            for r in rows_in or []
            for i, c in enumerate(r.get("counts") or [])
            if c
        ]
        frame = pd.DataFrame(rows, columns=["ts", "bucket", "low_ms", "high_ms", "count"])
        if over_time:
            frame["ts"] = ts_col(frame["ts"])
        return Histogram(bounds, frame)

    def operation_times(
        self, window: TimeWindow, filt: SpanFilter, trace_ids: Sequence[str] = (), limit: int = 200
    ) -> Frame:
        if trace_ids:
            params: dict[str, str] = {"traceIds": ",".join(trace_ids[:1000])}
        else:
            params = {**_window(window, step=False), **filter_params(filt), "limit": str(limit)}
        body = self._get("/api/narrows/operations", params)
        frame = pd.DataFrame(body.get("operations") or [], columns=list(OPS_FRAME))
        return Frame(frame, f"over {body.get('traces', 0)} traces")

    def compare(
        self, window: TimeWindow, base: SpanFilter, selection: SpanFilter, keys: Sequence[str] = ()
    ) -> Frame:
        params = {
            **_window(window, step=False),
            **filter_params(base),
            **filter_params(selection, "selection."),
        }
        if keys:
            params["keys"] = ",".join(keys)
        body = self._get("/api/narrows/compare", params)
        rows = [
            {"key": k["key"], "score": k.get("score", 0.0), **v}
            for k in body.get("keys") or []
            for v in k.get("values") or []
        ]
        frame = pd.DataFrame(rows, columns=list(COMPARE_FRAME))
        frame["value"] = frame["value"].map(lambda v: "null" if v is None else str(v))
        note = (
            f"{body.get('selection_count', 0)} selected spans vs "
            f"{body.get('baseline_count', 0)} others"
        )
        return Frame(frame, note)

    def duration_ranks(
        self, window: TimeWindow, service: str, operation: str, durations_ms: Sequence[float]
    ) -> Frame:
        # Bounds at the asked durations make the histogram's cumulative counts exact ranks.
        wanted = sorted({round(float(d), 6) for d in durations_ms if d > 0})
        if len(wanted) > 100:
            wanted = [wanted[round(i)] for i in np.linspace(0, len(wanted) - 1, 100)]
        if not wanted:
            return Frame(pd.DataFrame(columns=list(RANK_FRAME)))
        params = {
            **_window(window, step=False),
            **filter_params(SpanFilter(service=service, operation=operation)),
            "bounds": ",".join(f"{b:g}" for b in wanted),
        }
        body = self._get("/api/narrows/latency", params)
        bounds = [float(b) for b in body.get("bounds_ms") or []]
        cum = np.cumsum([int(c) for c in body.get("counts") or []])
        total = int(body.get("count", cum[-1] if len(cum) else 0))
        rows = []
        for d in durations_ms:
            i = int(np.searchsorted(bounds, float(d) - 1e-9, side="left"))
            at_or_below = int(cum[i]) if i < len(cum) else total
            pct = 100.0 * at_or_below / total if total else np.nan
            rows.append({"duration_ms": d, "percentile": pct, "population": total})
        return Frame(pd.DataFrame(rows, columns=list(RANK_FRAME)))

    def logs(self, query: LogQuery) -> list[LogRecord]:
        params: dict[str, str] = {"limit": str(query.limit)}
        if query.window is not None:
            params.update(_window(query.window, step=False))
        for name, value in (
            ("traceId", query.trace_id),
            ("service", query.service),
            ("level", query.level),
            ("q", query.text),
        ):
            if value:
                params[name] = value
        body = self._get("/api/narrows/logs", params)
        return [
            LogRecord(
                time_ns=int(r.get("time_ns") or 0),
                service=str(r.get("service") or ""),
                severity=str(r.get("severity_text") or _severity(r.get("severity_number"))),
                body=str(r.get("body") or ""),
                trace_id=str(r.get("traceId") or ""),
                span_id=str(r.get("spanId") or ""),
                attributes=dict(r.get("attributes") or {}),
            )
            for r in body.get("logs") or []
        ]

    def exemplars(
        self, window: TimeWindow, metric: str, match: Mapping[str, str], limit: int = 100
    ) -> list[Exemplar]:
        params = {
            **_window(window, step=False),
            "name": metric,
            "match": json.dumps(dict(match)),
            "limit": str(limit),
        }
        body = self._get("/api/narrows/exemplars", params)
        return [
            Exemplar(
                trace_id=str(e.get("traceId") or ""),
                span_id=str(e.get("spanId") or ""),
                time_ns=int(e.get("time_ns") or 0),
                value=float(e.get("value") or 0.0),
                labels={str(k): str(v) for k, v in (e.get("labels") or {}).items()},
            )
            for e in body.get("exemplars") or []
            if e.get("traceId")
        ]

    def metric_series(
        self, name: str, match: Mapping[str, str], window: TimeWindow, fn: str = "rate"
    ) -> Frame:
        if fn not in _FN:
            raise ValueError(f"fn must be one of {', '.join(_FN)}")
        params = {**_window(window), "name": name, "match": json.dumps(dict(match)), "fn": fn}
        body = self._get("/api/narrows/metrics/series", params)
        rows = [
            {**s.get("labels", {}), "t_ns": p[0], "value": p[1]}
            for s in body.get("series") or []
            for p in s.get("points") or []
        ]
        frame = pd.DataFrame(rows)
        if frame.empty:
            return Frame(pd.DataFrame(columns=["ts", "value"]))
        frame["ts"] = ts_col(frame.pop("t_ns"))
        return Frame(frame)

    def shard_stats(self, window: TimeWindow) -> Frame:
        """SHARD_FRAME plus ``service``, the shard's owner: shard ids are per service (the
        micro topology's catalog and orders services each have a shard 0)."""
        parts = []
        for service in self.services():
            filt = SpanFilter(kind="client", service=service)
            red = self.red(window, filt, group_by="app.shard.id", limit=100).data
            red = red[red["group"] != "(none)"]
            if red.empty:
                continue
            parts.append(
                pd.DataFrame(
                    {
                        "ts": red["ts"],
                        "shard_id": red["group"],
                        "queries": red["count"].astype(int),
                        "errors": red["errors"].astype(int),
                        "mean_ms": red["mean_ms"],
                        "p95_ms": red["p95_ms"],
                        "service": service,
                    }
                )
            )
        columns = [*SHARD_FRAME, "service"]
        if not parts:
            return Frame(pd.DataFrame(columns=columns))
        frame = pd.concat(parts, ignore_index=True)
        note: str | None = None
        if frame["service"].nunique() > 1:
            # The scraped pool histogram does not say whose shard it measured (its series
            # carry the scrape target, not the service): no column beats a wrong one, and
            # the analysis reads the wait from its sampled spans instead.
            frame["pool_wait_mean_ms"] = np.nan
            note = "pool wait is not split by service in the scraped metrics"
        else:
            waits, note = self._pool_wait(window)
            frame = frame.merge(waits, on=["ts", "shard_id"], how="left")
        return Frame(frame.reindex(columns=columns), note)

    def _pool_wait(self, window: TimeWindow) -> tuple[pd.DataFrame, str | None]:
        """Mean pool wait per step and shard: the scraped histogram, else sampled spans."""
        total = self.metric_series("app_shard_pool_wait_seconds_sum", {}, window, "increase").data
        count = self.metric_series("app_shard_pool_wait_seconds_count", {}, window, "increase").data
        if not total.empty and "app_shard_id" in total.columns:
            keys = ["ts", "app_shard_id"]
            s = total.groupby(keys)["value"].sum()
            c = count.groupby(keys)["value"].sum() if not count.empty else s * np.nan
            mean = (1000.0 * s / c.where(c > 0)).rename("pool_wait_mean_ms").reset_index()
            return mean.rename(columns={"app_shard_id": "shard_id"}), None
        traces = sample_traces(self, window)
        return pool_wait_from_traces(traces, window), (
            f"pool wait estimated from {len(traces)} sampled traces (no scraped pool metric)"
        )

    def cache_stats(self, window: TimeWindow) -> Frame:
        rows = []
        for service in self.services():
            for op in self.operations(service):
                if not op.name.startswith("cache.get "):
                    continue
                filt = SpanFilter(service=service, operation=op.name)
                red = self.red(window, filt, group_by="app.cache.hit").data
                for ts, g in red.groupby("ts"):
                    by = {str(k): r for k, r in g.set_index("group").iterrows()}
                    hit, miss = by.get("true"), by.get("false")
                    rows.append(
                        {
                            "ts": ts,
                            "cache": op.name.removeprefix("cache.get "),
                            "hits": 0 if hit is None else int(hit["count"] - hit["errors"]),
                            "misses": 0 if miss is None else int(miss["count"] - miss["errors"]),
                            "errors": int(g["errors"].sum()),
                        }
                    )
        frame = pd.DataFrame(rows, columns=list(CACHE_FRAME))
        return Frame(frame.groupby(["ts", "cache"], as_index=False).sum() if rows else frame)

    def freshness(self) -> Freshness:
        body = self._get("/api/narrows/stats", {})
        newest = {
            signal: (body.get(key) or {}).get("newest_ns")
            for signal, key in (
                ("traces", "spans"),
                ("logs", "logs"),
                ("metrics", "metric_points"),
            )
        }
        return Freshness(
            {k: int(v) if v is not None else None for k, v in newest.items()},
            {"ingest": body.get("ingest") or {}, "storage": body.get("storage") or {}},
        )


def _severity(number: object) -> str:
    n = int(number) if isinstance(number, int | float) else 0
    for floor, name in ((21, "FATAL"), (17, "ERROR"), (13, "WARN"), (9, "INFO"), (5, "DEBUG")):
        if n >= floor:
            return name
    return "TRACE" if n else ""
