"""The one contract every backend implements: the questions the pages ask."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from dashboard.sources.model import Trace, TraceSummary

__all__ = ["SourceError", "TelemetrySource"]


class SourceError(Exception):
    """A backend is unreachable, slow or answered an error; the message names its URL."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class TelemetrySource(Protocol):
    def services(self) -> list[str]: ...

    def trace_summaries(
        self, service: str | None, start: datetime, end: datetime, limit: int = 20
    ) -> list[TraceSummary]: ...

    def get_trace(self, trace_id: str) -> Trace | None: ...
