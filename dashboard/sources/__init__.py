"""The only part of the dashboard that talks to the network: one Protocol, one class per backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dashboard.sources.base import SourceError, TelemetrySource, Unavailable
from dashboard.sources.model import Span, Trace, TraceSummary

if TYPE_CHECKING:
    from dashboard.settings import DashboardSettings

__all__ = [
    "SOURCE_KINDS",
    "SourceError",
    "Span",
    "TelemetrySource",
    "Trace",
    "TraceSummary",
    "Unavailable",
    "make_source",
]

SOURCE_KINDS = ("narrows", "prometheus+jaeger+loki")


def make_source(settings: DashboardSettings) -> TelemetrySource:
    """The source named by ``NARROWS_SOURCE``/``--source``, configured from the settings."""
    if settings.source == "narrows":
        from dashboard.sources.narrows import NarrowsSource

        return NarrowsSource(settings.query_url, token=settings.token, timeout_s=settings.timeout_s)
    if settings.source == "prometheus+jaeger+loki":
        from dashboard.sources.scaled import PrometheusJaegerLokiSource

        return PrometheusJaegerLokiSource(
            settings.prometheus_url,
            settings.jaeger_url,
            settings.loki_url,
            timeout_s=settings.timeout_s,
        )
    raise ValueError(f"unknown source {settings.source!r} (valid: {', '.join(SOURCE_KINDS)})")
