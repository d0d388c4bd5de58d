"""The one contract every backend implements: the questions the pages ask.

Two exceptions cross this seam, and pages catch both: ``SourceError`` (a backend is down,
slow or answered an error: the banner names its URL) and ``Unavailable`` (this backend
cannot answer that question at all: the page says so and carries on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

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

__all__ = ["SourceError", "TelemetrySource", "Unavailable"]


class SourceError(Exception):
    """A backend is unreachable, slow or answered an error; the message names its URL."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason

    def __reduce__(self) -> tuple[type[SourceError], tuple[str, str]]:
        return (SourceError, (self.url, self.reason))


class Unavailable(Exception):
    """The configured backend cannot answer this question (not an outage)."""

    def __init__(self, question: str, backend: str, why: str) -> None:
        super().__init__(f"{question} is unavailable on the {backend} backend: {why}")
        self.question = question
        self.backend = backend
        self.why = why

    def __reduce__(self) -> tuple[type[Unavailable], tuple[str, str, str]]:
        return (Unavailable, (self.question, self.backend, self.why))


class TelemetrySource(Protocol):
    """What the dashboard asks; ``narrows`` and ``prometheus+jaeger+loki`` both answer.

    Frames use the column tuples in ``dashboard.sources.model``. Every method raises
    ``SourceError`` on an outage and ``Unavailable`` for a question its backend lacks.
    """

    #: "narrows" or "prometheus+jaeger+loki".
    kind: str

    def endpoints(self) -> dict[str, str]:
        """Backend name → base URL, for banners and the Overview."""
        ...

    def services(self) -> list[str]: ...

    def operations(self, service: str, kind: str | None = None) -> list[Operation]: ...

    def red(
        self,
        window: TimeWindow,
        filt: SpanFilter,
        group_by: str | None = None,
        limit: int = 10,
    ) -> Frame:
        """Rate, errors and duration percentiles per time step (``RED_FRAME``), by group."""
        ...

    def latency(self, window: TimeWindow, filt: SpanFilter, *, over_time: bool = True) -> Histogram:
        """Span-duration histogram, per time step when ``over_time`` (a heatmap)."""
        ...

    def find_traces(self, query: TraceQuery) -> list[TraceSummary]: ...

    def fetch_traces(self, query: TraceQuery) -> list[Trace]:
        """Whole traces matching the search (for samples the analysis reads)."""
        ...

    def get_trace(self, trace_id: str) -> Trace | None: ...

    def operation_times(
        self, window: TimeWindow, filt: SpanFilter, trace_ids: Sequence[str] = (), limit: int = 200
    ) -> Frame:
        """Count and self time per (service, operation) over a set of traces."""
        ...

    def compare(
        self,
        window: TimeWindow,
        base: SpanFilter,
        selection: SpanFilter,
        keys: Sequence[str] = (),
    ) -> Frame:
        """Attribute value shares in the selection vs the rest (key, value, …, lift, score)."""
        ...

    def duration_ranks(
        self, window: TimeWindow, service: str, operation: str, durations_ms: Sequence[float]
    ) -> Frame:
        """For each duration, the share of same-operation spans in the window at or below it
        (columns ``duration_ms``, ``percentile``, ``population``)."""
        ...

    def logs(self, query: LogQuery) -> list[LogRecord]: ...

    def exemplars(
        self, window: TimeWindow, metric: str, match: Mapping[str, str], limit: int = 100
    ) -> list[Exemplar]: ...

    def metric_series(
        self, name: str, match: Mapping[str, str], window: TimeWindow, fn: str = "rate"
    ) -> Frame:
        """Samples of one series name per step (columns ``ts``, ``value`` plus labels)."""
        ...

    def shard_stats(self, window: TimeWindow) -> Frame:
        """Shard queries per step and shard (``SHARD_FRAME``)."""
        ...

    def cache_stats(self, window: TimeWindow) -> Frame:
        """Cache lookups per step and cache (``CACHE_FRAME``)."""
        ...

    def freshness(self) -> Freshness: ...
