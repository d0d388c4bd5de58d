"""Cached access to the configured source, the shared time window, and the error banners.

Pages call the ``load_*`` functions, never a source: answers are cached for a short TTL
(live data) or longer (a finished trace), keyed by the settings, so two browser tabs on
the same window share one backend request. ``guard`` turns a backend outage into a
banner naming the URL and an unanswerable question into a note, never a traceback.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from dashboard.settings import DashboardSettings
from dashboard.sources import SourceError, TelemetrySource, Unavailable, make_source
from dashboard.sources.model import (
    Exemplar,
    Frame,
    Freshness,
    Histogram,
    LogRecord,
    Operation,
    Trace,
    TraceSummary,
)
from dashboard.sources.query import LogQuery, SpanFilter, TimeWindow, TraceQuery

__all__ = [
    "current_window",
    "diagnosis",
    "guard",
    "load",
    "service_map",
    "settings",
    "show_source_error",
    "source",
]

LIVE_TTL_S = 10
STABLE_TTL_S = 300
#: Window ends are aligned to this many seconds, so reruns within it hit the cache.
ALIGN_S = 5
DEFAULT_RANGE_MIN = 15
DIAGNOSIS_ALIGN_S = 30


def settings() -> DashboardSettings:
    return DashboardSettings.from_env()


@st.cache_resource(show_spinner=False)
def _source(config: DashboardSettings) -> TelemetrySource:
    return make_source(config)


def source() -> TelemetrySource:
    return _source(settings())


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False, max_entries=500)
def _live(config: DashboardSettings, method: str, args: tuple[Any, ...]) -> Any:
    return getattr(_source(config), method)(*args)


@st.cache_data(ttl=STABLE_TTL_S, show_spinner=False, max_entries=200)
def _stable(config: DashboardSettings, method: str, args: tuple[Any, ...]) -> Any:
    return getattr(_source(config), method)(*args)


class _Loaders:
    """Typed, cached calls on the configured source (``load.red(window, filt, ...)``)."""

    def _call(self, method: str, *args: Any, stable: bool = False) -> Any:
        return (_stable if stable else _live)(settings(), method, args)

    def services(self) -> list[str]:
        out: list[str] = self._call("services")
        return out

    def operations(self, service: str, kind: str | None = None) -> list[Operation]:
        out: list[Operation] = self._call("operations", service, kind)
        return out

    def busiest_services(self, window: TimeWindow) -> list[str]:
        """Services with server requests in the window, busiest first, then the rest."""
        services = self.services()
        try:
            red = self.red(window, SpanFilter(kind="server"), "service.name", 100).data
        except Unavailable:
            return services
        busy = list(red.groupby("group")["count"].sum().sort_values(ascending=False).index)
        return [s for s in busy if s in services] + [s for s in services if s not in busy]

    def busiest_routes(self, service: str, window: TimeWindow) -> list[str]:
        """The service's server routes, busiest in the window first."""
        routes = self.routes(service)
        try:
            red = self.red(window, SpanFilter(service=service, kind="server"), "span.name", 100)
        except Unavailable:
            return routes
        busy = list(red.data.groupby("group")["count"].sum().sort_values(ascending=False).index)
        return [r for r in busy if r in routes] + [r for r in routes if r not in busy]

    def routes(self, service: str) -> list[str]:
        return sorted(o.name for o in self.operations(service, "server"))

    def red(
        self, window: TimeWindow, filt: SpanFilter, group_by: str | None = None, limit: int = 10
    ) -> Frame:
        out: Frame = self._call("red", window, filt, group_by, limit)
        return out

    def latency(self, window: TimeWindow, filt: SpanFilter, over_time: bool = True) -> Histogram:
        out: Histogram = _live_latency(settings(), window, filt, over_time)
        return out

    def find_traces(self, query: TraceQuery) -> list[TraceSummary]:
        out: list[TraceSummary] = self._call("find_traces", query)
        return out

    def fetch_traces(self, query: TraceQuery) -> list[Trace]:
        out: list[Trace] = self._call("fetch_traces", query)
        return out

    def trace(self, trace_id: str) -> Trace | None:
        out: Trace | None = self._call("get_trace", trace_id, stable=True)
        return out

    def operation_times(
        self, window: TimeWindow, filt: SpanFilter, trace_ids: tuple[str, ...] = ()
    ) -> Frame:
        out: Frame = self._call("operation_times", window, filt, trace_ids)
        return out

    def compare(
        self,
        window: TimeWindow,
        base: SpanFilter,
        selection: SpanFilter,
        keys: tuple[str, ...] = (),
    ) -> Frame:
        out: Frame = self._call("compare", window, base, selection, keys)
        return out

    def duration_ranks(
        self, window: TimeWindow, service: str, operation: str, durations: tuple[float, ...]
    ) -> Frame:
        out: Frame = self._call("duration_ranks", window, service, operation, durations)
        return out

    def logs(self, query: LogQuery) -> list[LogRecord]:
        out: list[LogRecord] = self._call("logs", query)
        return out

    def exemplars(
        self, window: TimeWindow, metric: str, match: Mapping[str, str], limit: int = 100
    ) -> list[Exemplar]:
        out: list[Exemplar] = self._call("exemplars", window, metric, dict(match), limit)
        return out

    def metric_series(
        self, name: str, match: Mapping[str, str], window: TimeWindow, fn: str = "rate"
    ) -> Frame:
        out: Frame = self._call("metric_series", name, dict(match), window, fn)
        return out

    def shard_stats(self, window: TimeWindow) -> Frame:
        out: Frame = self._call("shard_stats", window)
        return out

    def cache_stats(self, window: TimeWindow) -> Frame:
        out: Frame = self._call("cache_stats", window)
        return out

    def freshness(self) -> Freshness:
        out: Freshness = self._call("freshness")
        return out


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False, max_entries=100)
def _live_latency(
    config: DashboardSettings, window: TimeWindow, filt: SpanFilter, over_time: bool
) -> Histogram:
    return _source(config).latency(window, filt, over_time=over_time)


load = _Loaders()


def current_window(now: datetime | None = None) -> TimeWindow:
    """The window the sidebar's picker chose, ending now (aligned to ``ALIGN_S``)."""
    minutes = int(st.session_state.get("range_minutes", DEFAULT_RANGE_MIN))
    now = now or datetime.now(UTC)
    end_s = math.ceil(now.timestamp() / ALIGN_S) * ALIGN_S
    end = datetime.fromtimestamp(end_s, UTC)
    return TimeWindow(end - timedelta(minutes=minutes), end)


def show_source_error(exc: SourceError) -> None:
    """The banner every page shows instead of a traceback when the backend fails."""
    st.error(
        f"Telemetry backend unreachable at {exc.url} — {exc.reason}", icon=":material/cloud_off:"
    )


def show_unavailable(exc: Unavailable) -> None:
    st.info(
        f"{exc.question} is unavailable on the {exc.backend} backend: {exc.why}.",
        icon=":material/info:",
    )


@contextmanager
def guard() -> Iterator[None]:
    """Render the body; an outage becomes the banner, a missing capability a note."""
    try:
        yield
    except SourceError as exc:
        show_source_error(exc)
    except Unavailable as exc:
        show_unavailable(exc)
    except ValueError as exc:
        st.error(f"Cannot show this: {exc}", icon=":material/warning:")


def note(frame: Frame | Histogram) -> None:
    if frame.note:
        st.caption(frame.note)


def first(seq: Sequence[str], default: str | None = None) -> str | None:
    return seq[0] if seq else default


@st.cache_data(ttl=30, show_spinner="Analysing the window…", max_entries=20)
def _diagnosis(config: DashboardSettings, window: TimeWindow, sweep_json: str | None) -> Any:
    import pandas as pd

    from dashboard.analysis.diagnose import diagnose_report
    from dashboard.analysis.inputs import SloObjective
    from dashboard.loaders import analysis_inputs

    sweep = pd.read_json(io.StringIO(sweep_json)) if sweep_json else None
    slo = SloObjective(availability=config.slo_availability, latency_ms=config.slo_latency_ms)
    inputs = analysis_inputs(_source(config), window, slo, sweep)
    return diagnose_report(inputs)


@st.cache_data(ttl=LIVE_TTL_S, show_spinner="Sampling traces for the map…", max_entries=20)
def _map_sample(config: DashboardSettings, window: TimeWindow) -> Any:
    from dashboard.loaders import map_sample

    return map_sample(_source(config), window)


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False, max_entries=40)
def _service_map(config: DashboardSettings, window: TimeWindow, by_instance: bool) -> Any:
    from dashboard.analysis.servicemap import service_map as build

    sample = _map_sample(config, window)
    smap = build(
        sample.traces, window_s=window.seconds, scale=sample.scale, by_instance=by_instance
    )
    return smap, sample.note


def service_map(window: TimeWindow, by_instance: bool = True) -> Any:
    """``(ServiceMap, note)`` for the window, from a trace sample (cached for a few seconds;
    switching replicas on and off reuses the sample)."""
    return _service_map(settings(), window, by_instance)


def diagnosis(window: TimeWindow, sweep_json: str | None = None) -> Any:
    """The analysis' ``Diagnosis`` (findings, skipped detectors) for the window, whose end
    is aligned to ``DIAGNOSIS_ALIGN_S`` so the costly analysis is shared between reruns."""
    end_s = math.ceil(window.end.timestamp() / DIAGNOSIS_ALIGN_S) * DIAGNOSIS_ALIGN_S
    end = datetime.fromtimestamp(end_s, UTC)
    aligned = TimeWindow(end - (window.end - window.start), end)
    return _diagnosis(settings(), aligned, sweep_json)
