"""Builds the tracer provider: resource, sampler, propagators and the configured exporters."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import sampling as s
from opentelemetry.sdk.version import __version__ as sdk_version
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from instrumentation.export import BoundedSpanProcessor, DropCounter, ExportFailureFilter
from instrumentation.redaction import Redactor, SpanRedactor
from instrumentation.settings import InstrumentationSettings

__all__ = [
    "RateLimitFilter",
    "build_propagator",
    "build_resource",
    "build_sampler",
    "build_span_processors",
    "build_tracer_provider",
]

_log = logging.getLogger("instrumentation.traces")

#: Loggers that warn on every request carrying a bad header (an attacker picks the rate).
HEADER_WARNING_LOGGERS = (
    "opentelemetry.trace.span",
    "opentelemetry.trace.propagation.tracecontext",
)


class RateLimitFilter(logging.Filter):
    """Lets one record through per ``every_s`` seconds: one warning, not a flood."""

    def __init__(self, every_s: float = 300.0) -> None:
        super().__init__()
        self._every, self._next = every_s, 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self._every
        return True


def build_resource(settings: InstrumentationSettings, instance_id: str | None = None) -> Resource:
    """The resource from settings alone (``Resource.create`` would re-read ``os.environ``)."""
    attrs: dict[str, Any] = {
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": sdk_version,
        "telemetry.distro.name": "narrows",
        **settings.resource_attributes,
        "service.name": settings.service_name,
        "service.instance.id": instance_id or str(uuid.uuid4()),
    }
    if settings.service_version:
        attrs["service.version"] = settings.service_version
    return Resource(attrs)


def build_sampler(settings: InstrumentationSettings) -> s.Sampler:
    ratio = settings.sampler_ratio
    samplers: dict[str, s.Sampler] = {
        "always_on": s.ALWAYS_ON,
        "always_off": s.ALWAYS_OFF,
        "traceidratio": s.TraceIdRatioBased(ratio),
        "parentbased_always_on": s.ParentBased(s.ALWAYS_ON),
        "parentbased_always_off": s.ParentBased(s.ALWAYS_OFF),
        "parentbased_traceidratio": s.ParentBased(s.TraceIdRatioBased(ratio)),
    }
    return samplers[settings.sampler]


class ExtractOnly(TextMapPropagator):
    """Accepts a format on the way in without adding its headers on the way out.

    By default Narrows injects only W3C headers but still continues a trace that
    arrives with B3 headers (single or multi), as DESIGN.md promises.
    """

    def __init__(self, inner: TextMapPropagator) -> None:
        self._inner = inner

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[Any] = default_getter,
    ) -> Context:
        return self._inner.extract(carrier, context, getter)

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[Any] = default_setter,
    ) -> None:
        return None

    @property
    def fields(self) -> set[str]:
        return set(self._inner.fields)


def build_propagator(settings: InstrumentationSettings) -> TextMapPropagator:
    from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat

    names = [n for n in settings.propagators if n != "none"]
    chosen: list[TextMapPropagator] = []
    if not any(n in ("b3", "b3multi") for n in names):
        chosen.append(ExtractOnly(B3SingleFormat()))  # first, so W3C headers win when both
    table: dict[str, type[TextMapPropagator]] = {
        "tracecontext": TraceContextTextMapPropagator,
        "baggage": W3CBaggagePropagator,
        "b3": B3SingleFormat,  # extracts single and multi, injects single
        "b3multi": B3MultiFormat,
    }
    chosen.extend(table[n]() for n in names)
    return CompositePropagator(chosen)


def build_span_processors(
    settings: InstrumentationSettings, on_drop: DropCounter, failures: ExportFailureFilter
) -> list[SpanProcessor]:
    """One bounded processor per exporter named in ``OTEL_TRACES_EXPORTER``."""
    processors: list[SpanProcessor] = []
    redact = SpanRedactor(Redactor(settings.redact_keys))
    common = {
        "queue_size": settings.span_queue_size,
        "batch_size": settings.span_batch_size,
        "delay_s": settings.span_schedule_delay_s,
        "on_drop": on_drop,
        "failures": failures,
    }
    for name in settings.traces_exporter:
        exporter: Any
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http import Compression

            from instrumentation.otlp_encoding import NarrowsOTLPSpanExporter

            exporter = NarrowsOTLPSpanExporter(
                endpoint=settings.traces_url,
                headers=dict(settings.otlp_headers),
                timeout=settings.otlp_timeout_s,
                compression=Compression.Gzip
                if settings.otlp_compression == "gzip"
                else Compression.NoCompression,
            )
            destination = settings.traces_url
        elif name == "zipkin_json":
            from opentelemetry.exporter.zipkin.json import ZipkinExporter

            exporter = ZipkinExporter(
                endpoint=settings.zipkin_endpoint, timeout=max(1, int(settings.otlp_timeout_s))
            )
            destination = settings.zipkin_endpoint
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporter, destination = ConsoleSpanExporter(), "stdout"
        else:
            continue
        processors.append(
            BoundedSpanProcessor(exporter, {**common, "destination": destination}, redact)
        )
    return processors


def build_tracer_provider(
    settings: InstrumentationSettings,
    resource: Resource,
    processors: Sequence[SpanProcessor],
) -> TracerProvider:
    # shutdown_on_exit=False: Telemetry registers one bounded shutdown for all signals.
    length = settings.attribute_value_length_limit
    provider = TracerProvider(
        resource=resource,
        sampler=build_sampler(settings),
        shutdown_on_exit=False,
        span_limits=SpanLimits(max_attribute_length=length, max_span_attribute_length=length),
    )
    for processor in processors:
        provider.add_span_processor(processor)
    return provider
