"""Dashboard settings, read once from ``NARROWS_*`` variables into a frozen dataclass.

A bad value warns and falls back to the default (the OpenTelemetry spec's rule for
environment variables), so a typo never keeps the dashboard from starting.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DashboardSettings"]

_log = logging.getLogger(__name__)
_SOURCES = ("narrows", "prometheus+jaeger+loki")


def _url(environ: Mapping[str, str], name: str, default: str) -> str:
    value = environ.get(name, "").strip() or default
    if value and not value.startswith(("http://", "https://")):
        _log.warning("%s=%r is not an http(s) URL; using %s", name, value, default)
        value = default
    return value.rstrip("/")


def _float(environ: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not lo <= value <= hi:
        _log.warning("%s=%r is not a number within [%g, %g]; using %g", name, raw, lo, hi, default)
        return default
    return value


@dataclass(frozen=True)
class DashboardSettings:
    source: str = "narrows"
    query_url: str = "http://127.0.0.1:16686"
    token: str | None = None
    prometheus_url: str = "http://127.0.0.1:9090"
    jaeger_url: str = "http://127.0.0.1:16686"
    loki_url: str | None = None
    timeout_s: float = 5.0
    #: Seconds between auto-refreshes of live charts.
    refresh_s: float = 10.0
    #: The SLO drawn on the Overview and used for burn rates.
    slo_availability: float = 0.999
    slo_latency_ms: float = 250.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> DashboardSettings:
        source = environ.get("NARROWS_SOURCE", "").strip() or cls.source
        if source not in _SOURCES:
            _log.warning("NARROWS_SOURCE=%r is not one of %s; using narrows", source, _SOURCES)
            source = cls.source
        loki = environ.get("NARROWS_LOKI_URL", "").strip()
        return cls(
            source=source,
            query_url=_url(environ, "NARROWS_QUERY_URL", cls.query_url),
            token=environ.get("NARROWS_TOKEN", "").strip() or None,
            prometheus_url=_url(environ, "NARROWS_PROMETHEUS_URL", cls.prometheus_url),
            jaeger_url=_url(environ, "NARROWS_JAEGER_URL", cls.jaeger_url),
            loki_url=(_url(environ, "NARROWS_LOKI_URL", "") or None) if loki else None,
            timeout_s=_float(environ, "NARROWS_DASHBOARD_TIMEOUT", cls.timeout_s, 0.1, 120),
            refresh_s=_float(environ, "NARROWS_DASHBOARD_REFRESH", cls.refresh_s, 1, 3600),
            slo_availability=_float(
                environ, "NARROWS_SLO_AVAILABILITY", cls.slo_availability, 0.5, 0.99999
            ),
            slo_latency_ms=_float(environ, "NARROWS_SLO_LATENCY_MS", cls.slo_latency_ms, 1, 1e6),
        )
