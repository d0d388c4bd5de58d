"""PrometheusJaegerLokiSource: the scaled shape's backends behind the same questions.

Prometheus answers RED, latency histograms, shards, cache and exemplars from the metrics
in docs/telemetry.md; Jaeger (API v3) answers trace searches; Loki answers logs. What none
of them aggregates — attribute comparison, self time per operation, a span's percentile —
is computed from a sample of traces, and the answer's note says so. Questions outside that
(e.g. RED grouped by an arbitrary span attribute) raise ``Unavailable`` with the reason.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta

import httpx
import pandas as pd

from dashboard.sources.base import Unavailable
from dashboard.sources.http import JsonClient
from dashboard.sources.jaeger import JaegerV3Client
from dashboard.sources.loki import LokiClient, logql
from dashboard.sources.model import (
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
from dashboard.sources.prometheus import PrometheusClient, counter_steps, selector
from dashboard.sources.promhist import HTTP_METRIC, cache_frame, histogram_frame, red_frame
from dashboard.sources.query import LogQuery, SpanFilter, TimeWindow, TraceQuery
from dashboard.sources.sampled import compare_spans, duration_ranks, operation_times
from dashboard.sources.shared import sample_traces

__all__ = ["KIND", "PrometheusJaegerLokiSource"]

KIND = "prometheus+jaeger+loki"
_GROUPS: dict[str | None, tuple[str, ...]] = {
    None: (),
    "span.name": ("http_request_method", "http_route"),
    "http.route": ("http_route",),
    "service.name": ("service_name",),
}
_HTTP_WHY = "Prometheus holds the HTTP server histogram, labelled by method, route and status only"


class PrometheusJaegerLokiSource:
    kind = KIND

    def __init__(
        self,
        prometheus_url: str,
        jaeger_url: str,
        loki_url: str | None = None,
        *,
        timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        def client(url: str) -> JsonClient:
            return JsonClient(url, timeout_s=timeout_s, transport=transport)

        self.prom = PrometheusClient(client(prometheus_url))
        self.jaeger = JaegerV3Client(client(jaeger_url))
        self.loki = LokiClient(client(loki_url)) if loki_url else None

    def endpoints(self) -> dict[str, str]:
        out = {"Prometheus": self.prom.base_url, "Jaeger": self.jaeger.base_url}
        if self.loki:
            out["Loki"] = self.loki.base_url
        return out

    # --- traces: Jaeger ---
    def services(self) -> list[str]:
        return self.jaeger.services()

    def operations(self, service: str, kind: str | None = None) -> list[Operation]:
        return self.jaeger.operations(service, kind)

    def _per_service(self, query: TraceQuery) -> list[TraceQuery]:
        """Jaeger's search needs a service: a search over all of them asks each one."""
        if query.service:
            return [query]
        return [replace(query, service=s) for s in self.jaeger.services()]

    def find_traces(self, query: TraceQuery) -> list[TraceSummary]:
        found = [s for q in self._per_service(query) for s in self.jaeger.summaries(q)]
        unique = {s.trace_id: s for s in found}.values()
        return sorted(unique, key=lambda s: s.start_ns, reverse=True)[: query.limit]

    def fetch_traces(self, query: TraceQuery) -> list[Trace]:
        found = [t for q in self._per_service(query) for t in self.jaeger.traces(q)]
        unique = {t.trace_id: t for t in found}.values()
        return sorted(unique, key=lambda t: t.start_ns, reverse=True)[: query.limit]

    def get_trace(self, trace_id: str) -> Trace | None:
        return self.jaeger.trace(trace_id)

    # --- metrics: Prometheus ---
    def _http_expr(self, metric: str, filt: SpanFilter, by: Sequence[str]) -> str:
        """``sum by (…)`` of an HTTP histogram series, with the span filter as matchers."""
        if not filt.only("service", "operation", "kind") or filt.kind not in (None, "server"):
            raise Unavailable("this span filter", KIND, _HTTP_WHY)
        matchers: dict[str, str] = {}
        if filt.operation:
            method, _, route = filt.operation.partition(" ")
            matchers["http_request_method"] = method
            if route:
                matchers["http_route"] = route
        expr = selector(metric, matchers)
        if filt.service or "service_name" in by:
            info = selector("target_info", {"service_name": filt.service} if filt.service else {})
            expr = f"({expr} * on (job, instance) group_left (service_name) {info})"
        return f"sum by ({', '.join(by)}) ({expr})"

    def _http_steps(
        self, window: TimeWindow, filt: SpanFilter, group: Sequence[str]
    ) -> pd.DataFrame:
        by = ["le", "http_response_status_code", "instance", *group]
        expr = self._http_expr(f"{HTTP_METRIC}_bucket", filt, sorted(set(by)))
        return counter_steps(self.prom.query_range(expr, window), window)

    def red(
        self, window: TimeWindow, filt: SpanFilter, group_by: str | None = None, limit: int = 10
    ) -> Frame:
        if group_by not in _GROUPS:
            raise Unavailable(f"RED grouped by {group_by}", KIND, _HTTP_WHY)
        group = _GROUPS[group_by]
        steps = self._http_steps(window, filt, group)
        by_sum = sorted({"instance", *group})
        sums = counter_steps(
            self.prom.query_range(self._http_expr(f"{HTTP_METRIC}_sum", filt, by_sum), window),
            window,
        )
        return Frame(red_frame(steps, sums, group, window.step_s, limit))

    def latency(self, window: TimeWindow, filt: SpanFilter, *, over_time: bool = True) -> Histogram:
        steps = self._http_steps(window, filt, ())
        bounds, frame = histogram_frame(steps, over_time)
        return Histogram(bounds, frame, "from the HTTP server histogram (Prometheus buckets)")

    def exemplars(
        self, window: TimeWindow, metric: str, match: Mapping[str, str], limit: int = 100
    ) -> list[Exemplar]:
        name = metric if metric.endswith("_bucket") else f"{metric}_bucket"
        return self.prom.exemplars(selector(name, match), window, limit)

    def metric_series(
        self, name: str, match: Mapping[str, str], window: TimeWindow, fn: str = "rate"
    ) -> Frame:
        result = self.prom.query_range(selector(name, match), window)
        if fn in ("raw", "last"):
            rows = [
                {**s.get("metric", {}), "t": float(t), "value": float(v)}
                for s in result
                for t, v in s.get("values") or []
            ]
            frame = pd.DataFrame(rows)
            if frame.empty:
                return Frame(pd.DataFrame(columns=["ts", "value"]))
            frame["ts"] = pd.to_datetime(frame.pop("t"), unit="s", utc=True)
            return Frame(frame)
        if fn not in ("rate", "increase"):
            raise ValueError("fn must be one of raw, last, rate, increase")
        frame = counter_steps(result, window).rename(columns={"increase": "value"})
        if fn == "rate" and not frame.empty:
            frame["value"] = frame["value"] / window.step_s
        return Frame(frame)

    def shard_stats(self, window: TimeWindow) -> Frame:
        by = "le, app_shard_id, instance"
        q = self.prom.query_range(
            f"sum by ({by}) ({selector('db_client_operation_duration_seconds_bucket')})", window
        )
        s = self.prom.query_range(
            "sum by (app_shard_id, instance) "
            f"({selector('db_client_operation_duration_seconds_sum')})",
            window,
        )
        steps, sums = counter_steps(q, window), counter_steps(s, window)
        red = red_frame(steps, sums, ("app_shard_id",), window.step_s, 1000)
        if red.empty:
            return Frame(pd.DataFrame(columns=list(SHARD_FRAME)))
        waits = self.metric_series("app_shard_pool_wait_seconds_sum", {}, window, "increase").data
        counts = self.metric_series(
            "app_shard_pool_wait_seconds_count", {}, window, "increase"
        ).data
        frame = pd.DataFrame(
            {
                "ts": red["ts"],
                "shard_id": red["group"],
                "queries": red["count"].astype(int),
                "mean_ms": red["mean_ms"],
                "p95_ms": red["p95_ms"],
            }
        )
        if not waits.empty and "app_shard_id" in waits.columns:
            w = waits.groupby(["ts", "app_shard_id"])["value"].sum()
            c = counts.groupby(["ts", "app_shard_id"])["value"].sum()
            mean = (1000 * w / c.where(c > 0)).rename("pool_wait_mean_ms").reset_index()
            frame = frame.merge(mean.rename(columns={"app_shard_id": "shard_id"}), how="left")
        else:
            frame["pool_wait_mean_ms"] = math.nan
        # A failed operation carries its exception's class in error_type (docs/telemetry.md).
        failed = self.prom.query_range(
            "sum by (app_shard_id, instance) "
            f"({selector('db_client_operation_duration_seconds_count', error_type='.+')})",
            window,
        )
        errors = counter_steps(failed, window)
        if errors.empty:
            frame["errors"] = 0
        else:
            per_step = (
                errors.groupby(["ts", "app_shard_id"])["increase"]
                .sum()
                .rename("errors")
                .reset_index()
                .rename(columns={"app_shard_id": "shard_id"})
            )
            frame = frame.merge(per_step, how="left")
            frame["errors"] = frame["errors"].fillna(0).round().astype(int)
        return Frame(frame[list(SHARD_FRAME)])

    def cache_stats(self, window: TimeWindow) -> Frame:
        result = self.prom.query_range(
            f"sum by (cache, result, instance) ({selector('app_cache_lookups_total')})", window
        )
        return Frame(cache_frame(counter_steps(result, window)))

    # --- computed from sampled traces ---
    def _sample(self, window: TimeWindow, filt: SpanFilter) -> list[Trace]:
        op = filt.operation if filt.service else None
        return sample_traces(self, window, service=filt.service, operation=op)

    def operation_times(
        self, window: TimeWindow, filt: SpanFilter, trace_ids: Sequence[str] = (), limit: int = 200
    ) -> Frame:
        if trace_ids:
            traces = [t for tid in trace_ids[:limit] if (t := self.get_trace(tid)) is not None]
        else:
            traces = self._sample(window, filt)[:limit]
        note = f"computed from {len(traces)} traces fetched from Jaeger (it has no aggregates)"
        return Frame(operation_times(traces), note)

    def compare(
        self, window: TimeWindow, base: SpanFilter, selection: SpanFilter, keys: Sequence[str] = ()
    ) -> Frame:
        traces = {t.trace_id: t for t in self._sample(window, base)}
        if selection.duration_min_ms is not None and base.service:
            # Fetch the selection's tail on purpose, or a uniform sample may hold none of it.
            for t in sample_traces(
                self,
                window,
                service=base.service,
                operation=selection.operation or base.operation,
                duration_min_ms=selection.duration_min_ms,
            ):
                traces.setdefault(t.trace_id, t)
        frame = compare_spans(list(traces.values()), base, selection, keys)
        return Frame(
            frame, f"computed from {len(traces)} sampled traces (Jaeger has no aggregates)"
        )

    def duration_ranks(
        self, window: TimeWindow, service: str, operation: str, durations_ms: Sequence[float]
    ) -> Frame:
        traces = sample_traces(self, window, service=service, operation=operation)
        frame = duration_ranks(traces, service, operation, durations_ms)
        return Frame(frame, f"among same-operation spans of {len(traces)} sampled traces")

    # --- logs: Loki ---
    def logs(self, query: LogQuery) -> list[LogRecord]:
        if self.loki is None:
            raise Unavailable("Logs", KIND, "no Loki URL is configured (NARROWS_LOKI_URL)")
        window = query.window or TimeWindow.last(24 * 60)
        return self.loki.query_range(logql(query), window.start_ns, window.end_ns, query.limit)

    def freshness(self) -> Freshness:
        newest: dict[str, int | None] = {"traces": None, "logs": None, "metrics": None}
        scraped = self.prom.query("max(timestamp(up))")
        if scraped:
            newest["metrics"] = int(float(scraped[0]["value"][1]) * 1e9)
        recent = TimeWindow.last(15)
        found = self.find_traces(TraceQuery(recent, limit=1))
        if found:
            newest["traces"] = max(s.end_ns for s in found)
        if self.loki is not None:
            now = time.time_ns()
            expr = logql(LogQuery(window=recent, limit=1))
            hour = int(timedelta(hours=1).total_seconds() * 1e9)
            logs = self.loki.query_range(expr, now - hour, now, 1)
            newest["logs"] = logs[0].time_ns if logs else None
        return Freshness(newest)
