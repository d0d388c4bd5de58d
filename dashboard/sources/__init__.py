"""The only part of the dashboard that talks to the network: one Protocol, one class per backend."""

from dashboard.sources.base import SourceError, TelemetrySource
from dashboard.sources.model import Span, Trace, TraceSummary

__all__ = ["SourceError", "Span", "TelemetrySource", "Trace", "TraceSummary", "make_source"]


def make_source(kind: str, query_url: str, token: str | None = None) -> TelemetrySource:
    """The source named by ``NARROWS_SOURCE``/``--source``."""
    if kind == "narrows":
        from dashboard.sources.narrows import NarrowsSource

        return NarrowsSource(query_url, token=token)
    raise ValueError(f"unknown source {kind!r} (valid: narrows)")
