"""What a page asks a source for: a time window, span filters, trace and log searches.

These are validated on construction, so a value that reached a source is safe to put in a
URL parameter; query-language escaping (PromQL, LogQL) happens in the source that speaks it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "KINDS",
    "LEVELS",
    "SPAN_ID",
    "STATUSES",
    "TRACE_ID",
    "LogQuery",
    "SpanFilter",
    "TimeWindow",
    "TraceQuery",
    "go_duration",
    "rfc3339",
]

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
KINDS = ("internal", "server", "client", "producer", "consumer")
STATUSES = ("UNSET", "OK", "ERROR")
#: Most time steps a chart asks for (the collector allows 1,500; a chart needs far fewer).
MAX_STEPS = 240


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ns(ts: datetime) -> int:
    """Exact unix nanoseconds (no float rounding, so bucket keys match the collector's)."""
    delta = ts - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def go_duration(ms: float) -> str:
    """Milliseconds as a Go duration (``1500us``): the Jaeger API's and the collector's unit."""
    return f"{round(ms * 1000)}us"


@dataclass(frozen=True)
class TimeWindow:
    """[start, end) with the step charts bucket by (about 60 steps, at least 1 s)."""

    start: datetime
    end: datetime
    step_s: float = 0.0

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("time window bounds must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("the window must end after it starts")
        span = (self.end - self.start).total_seconds()
        step = self.step_s or max(1.0, math.ceil(span / 60))
        object.__setattr__(self, "step_s", float(max(step, 1.0, math.ceil(span / MAX_STEPS))))

    @classmethod
    def last(cls, minutes: float, now: datetime | None = None, step_s: float = 0.0) -> TimeWindow:
        """The ``minutes`` before now, aligned to whole seconds (so cached loaders hit)."""
        end = (now or datetime.now(UTC)).replace(microsecond=0) + timedelta(seconds=1)
        return cls(end - timedelta(minutes=minutes), end, step_s)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def start_ns(self) -> int:
        return _ns(self.start)

    @property
    def end_ns(self) -> int:
        return _ns(self.end)

    def label(self) -> str:
        return f"{self.start:%H:%M:%S}–{self.end:%H:%M:%S} UTC, step {self.step_s:g}s"


@dataclass(frozen=True)
class SpanFilter:
    """Which spans a question is about (every field optional; all given must hold)."""

    service: str | None = None
    operation: str | None = None
    kind: str | None = None
    status: str | None = None
    duration_min_ms: float | None = None
    duration_max_ms: float | None = None
    attributes: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}; got {self.status!r}")
        for bound in (self.duration_min_ms, self.duration_max_ms):
            if bound is not None and not (0 <= bound < 1e9):
                raise ValueError(f"duration bounds must be within [0, 1e9) ms; got {bound}")
        if len(self.attributes) > 32:
            raise ValueError("at most 32 attribute filters")

    @property
    def attribute_dict(self) -> dict[str, str]:
        return dict(self.attributes)

    def only(self, *names: str) -> bool:
        """True when no field other than ``names`` is set (what a metrics backend can filter)."""
        set_fields = {
            name
            for name in (
                "service",
                "operation",
                "kind",
                "status",
                "duration_min_ms",
                "duration_max_ms",
                "attributes",
            )
            if getattr(self, name) not in (None, ())
        }
        return set_fields <= set(names)


@dataclass(frozen=True)
class TraceQuery:
    """A trace search (the Jaeger API v3 find parameters)."""

    window: TimeWindow
    service: str | None = None
    operation: str | None = None
    duration_min_ms: float | None = None
    duration_max_ms: float | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    limit: int = 50

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= 1000:
            raise ValueError(f"limit must be within 1–1000; got {self.limit}")
        if self.operation and not self.service:
            raise ValueError("an operation needs its service")


@dataclass(frozen=True)
class LogQuery:
    """A log search: one trace's logs, or by service, minimum level and text."""

    window: TimeWindow | None = None
    trace_id: str | None = None
    service: str | None = None
    level: str | None = None
    text: str | None = None
    limit: int = 100

    def __post_init__(self) -> None:
        if self.trace_id is not None and not TRACE_ID.match(self.trace_id):
            raise ValueError("trace_id must be 32 lowercase hexadecimal characters")
        if self.trace_id is None and self.window is None:
            raise ValueError("a log search needs a trace id or a time window")
        if self.level is not None and self.level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}")
        if self.text is not None and len(self.text) > 256:
            raise ValueError("search text is limited to 256 characters")
        if not 1 <= self.limit <= 1000:
            raise ValueError(f"limit must be within 1–1000; got {self.limit}")


#: Minimum levels, lowest first (OTLP severity numbers 1, 5, 9, 13, 17, 21).
LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
