"""The one composition root: ``instrument(app)`` and ``configure()`` build the providers."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from instrumentation.settings import InstrumentationSettings

__all__ = ["Telemetry", "configure", "instrument"]

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_current: Telemetry | None = None


@dataclass
class Telemetry:
    """Handle returned by ``configure``/``instrument``; ``shutdown()`` flushes within a bound."""

    settings: InstrumentationSettings
    tracer_provider: TracerProvider | None
    instrumented_apps: list[Any] = field(default_factory=list)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush(int(timeout_s * 1000))
            self.tracer_provider.shutdown()


def _build_tracer_provider(settings: InstrumentationSettings) -> TracerProvider:
    attrs: dict[str, str] = {**settings.resource_attributes, "service.name": settings.service_name}
    provider = TracerProvider(resource=Resource.create(attrs))
    if settings.traces_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, headers=settings.otlp_headers))
        )
    return provider


def configure(**overrides: Any) -> Telemetry:
    """Set up providers once for this process (idempotent); returns the shared handle."""
    global _current
    with _lock:
        if _current is not None:
            return _current
        settings = InstrumentationSettings.from_env(**overrides)
        provider = None
        if not settings.sdk_disabled:
            provider = _build_tracer_provider(settings)
            trace.set_tracer_provider(provider)
        _current = Telemetry(settings=settings, tracer_provider=provider)
        return _current


def instrument(app: Any, **overrides: Any) -> Telemetry:
    """Instrument a FastAPI/Starlette app with one call (idempotent per app)."""
    telemetry = configure(**overrides)
    if any(a is app for a in telemetry.instrumented_apps):
        return telemetry
    if telemetry.tracer_provider is not None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=telemetry.tracer_provider, exclude_spans=["receive", "send"]
        )
    _mount_metrics(app)
    telemetry.instrumented_apps.append(app)
    return telemetry


def _mount_metrics(app: Any) -> None:
    """Serve prometheus-client's registry at ``/metrics`` (no redirect to ``/metrics/``)."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
    from starlette.requests import Request
    from starlette.responses import Response

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.add_route("/metrics", metrics, include_in_schema=False)
