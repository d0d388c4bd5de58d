"""The one composition root: ``configure()`` builds the providers, ``instrument(app)`` wires an app.

``configure`` is idempotent per process and installs the OpenTelemetry globals (tracer
and logger provider, propagator), structlog and the library instrumentors.
``build_telemetry`` builds the same parts without touching any global, which is what
tests use (``instrumentation.testing``).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from prometheus_client import REGISTRY, CollectorRegistry

from instrumentation.export import (
    EXPORTER_LOGGERS,
    BoundedLogProcessor,
    BoundedSpanProcessor,
    ExportFailureFilter,
)
from instrumentation.metrics import TelemetryMetrics
from instrumentation.server import ServerTelemetry
from instrumentation.settings import InstrumentationSettings
from instrumentation.traces import (
    HEADER_WARNING_LOGGERS,
    RateLimitFilter,
    build_propagator,
    build_resource,
    build_span_processors,
    build_tracer_provider,
)

__all__ = ["Telemetry", "build_telemetry", "configure", "current", "instrument"]

_log = logging.getLogger("instrumentation.setup")
_lock = threading.Lock()
_current: Telemetry | None = None
_failures = ExportFailureFilter()  # one per process: the exporters' loggers are global


@dataclass
class Telemetry:
    """Handle returned by ``configure``/``instrument``; ``shutdown()`` flushes within a bound."""

    settings: InstrumentationSettings
    tracer_provider: TracerProvider | None
    logger_provider: Any = None
    metrics: TelemetryMetrics | None = None
    propagator: TextMapPropagator | None = None
    server: ServerTelemetry | None = None
    span_processors: list[Any] = field(default_factory=list)
    log_processors: list[Any] = field(default_factory=list)
    instrumented_apps: list[Any] = field(default_factory=list)
    libraries: dict[str, str] = field(default_factory=dict)
    _stopped: bool = False
    _tracers: dict[str, trace.Tracer] = field(default_factory=dict, repr=False)

    @property
    def enabled(self) -> bool:
        return not self.settings.sdk_disabled

    def tracer(self, name: str = "narrows.instrumentation") -> trace.Tracer:
        """One tracer per name, kept: the SDK builds a new one on every ``get_tracer``
        call, which cost the helpers (``shard_span``, ``cache_lookup``) a sixth of their
        time per span."""
        if self.tracer_provider is None:
            return trace.NoOpTracer()
        found = self._tracers.get(name)
        if found is None:
            found = self.tracer_provider.get_tracer(name)
            if len(self._tracers) < 256:  # names come from code; bounded all the same
                self._tracers[name] = found
        return found

    def instrument(self, app: Any) -> Telemetry:
        """Detect the app's framework and wire the server middleware (idempotent per app)."""
        if not self.enabled or self.server is None or any(a is app for a in self.instrumented_apps):
            return self
        from instrumentation.frameworks import instrument_app

        instrument_app(app, self.server)
        self.instrumented_apps.append(app)
        return self

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        ok = True
        for p in [*self.span_processors, *self.log_processors]:
            remaining_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
            ok = bool(p.force_flush(remaining_ms)) and ok
        return ok

    def flush(self, timeout_s: float | None = None) -> bool:
        """Send what is queued, within ``timeout_s`` (default ``NARROWS_SHUTDOWN_TIMEOUT``),
        leaving the exporters open; never raises.

        For the end of an app's lifespan: uvicorn re-raises SIGTERM once its graceful
        shutdown is done, so the process dies by the signal and atexit (``shutdown``)
        never runs. The ASGI middleware calls this when the lifespan ends.
        """
        if self._stopped:
            return True
        bound = self.settings.shutdown_timeout_s if timeout_s is None else timeout_s
        try:
            return self.force_flush(bound)
        except Exception:
            _log.debug("flushing telemetry failed", exc_info=True)
            return False

    def shutdown(self, timeout_s: float | None = None) -> bool:
        """Flush and stop every exporter within ``timeout_s`` (default 5 s, collector up or down).

        Runs in a daemon thread joined with the bound, so even an exporter stuck in a
        network call cannot hold the caller (or interpreter exit) longer. Returns whether
        everything finished in time. Idempotent.
        """
        if self._stopped:
            return True
        self._stopped = True
        bound = self.settings.shutdown_timeout_s if timeout_s is None else timeout_s
        processors = [*self.span_processors, *self.log_processors]
        if not processors:
            return True
        deadline = time.monotonic() + bound
        threads = []
        for p in processors:
            t = threading.Thread(
                target=_shutdown_quietly, args=(p, bound), name="narrows-shutdown", daemon=True
            )
            try:
                t.start()
            except RuntimeError:  # interpreter finalising: no new threads, do it inline
                _shutdown_quietly(p, bound)
                continue
            threads.append(t)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)


def _shutdown_quietly(processor: Any, timeout_s: float) -> None:
    try:
        if isinstance(processor, BoundedSpanProcessor | BoundedLogProcessor):
            processor.shutdown(timeout_s)
        else:  # the SDK's own processors (tests) take no timeout
            processor.shutdown()
    except Exception:
        _log.debug("telemetry processor shutdown failed", exc_info=True)


def build_telemetry(
    settings: InstrumentationSettings,
    *,
    registry: CollectorRegistry | None = None,
    span_processors: Sequence[SpanProcessor] | None = None,
    log_processors: Sequence[Any] | None = None,
    access_logger: Any = None,
) -> Telemetry:
    """All parts for ``settings``, touching no global. ``span_processors``/``log_processors``
    replace the configured exporters (tests pass in-memory ones)."""
    if settings.sdk_disabled:
        return Telemetry(settings=settings, tracer_provider=None)
    # OTEL_RESOURCE_ATTRIBUTES may name the instance (a supervisor numbering its replicas);
    # otherwise every process start is a new instance.
    instance_id = settings.resource_attributes.get("service.instance.id") or str(uuid.uuid4())
    resource = build_resource(settings, instance_id)
    metrics = None
    if settings.metrics_exporter != "none":
        metrics = TelemetryMetrics(
            registry if registry is not None else CollectorRegistry(),
            cardinality_limit=settings.cardinality_limit,
            service_name=settings.service_name,
            instance_id=instance_id,
        )
    on_drop = metrics.count_dropped if metrics is not None else _ignore_drop
    if span_processors is None or log_processors is None:
        _install_log_filters()
    spans = (
        list(span_processors)
        if span_processors is not None
        else build_span_processors(settings, on_drop, _failures)
    )
    provider = build_tracer_provider(settings, resource, spans)
    logs = (
        list(log_processors)
        if log_processors is not None
        else _build_log_processors(settings, on_drop)
    )
    logger_provider = None
    if logs:
        from opentelemetry.sdk._logs import LoggerProvider

        logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        for p in logs:
            logger_provider.add_log_record_processor(p)
    propagator = build_propagator(settings)
    if access_logger is None and settings.access_log:
        import structlog

        access_logger = structlog.get_logger("instrumentation.access")
    server = ServerTelemetry(settings, provider, propagator, metrics, access_logger)
    telemetry = Telemetry(
        settings=settings,
        tracer_provider=provider,
        logger_provider=logger_provider,
        metrics=metrics,
        propagator=propagator,
        server=server,
        span_processors=spans,
        log_processors=logs,
    )
    server.flush = telemetry.flush
    return telemetry


def _ignore_drop(signal: str, reason: str, count: int) -> None:
    return None


def _build_log_processors(settings: InstrumentationSettings, on_drop: Any) -> list[Any]:
    if not settings.configure_logging or settings.logs_exporter == "none":
        return []
    common = {
        "queue_size": settings.log_queue_size,
        "batch_size": settings.log_batch_size,
        "delay_s": settings.log_schedule_delay_s,
        "on_drop": on_drop,
        "failures": _failures,
    }
    if settings.logs_exporter == "console":
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

        console = ConsoleLogRecordExporter()
        return [BoundedLogProcessor(console, {**common, "destination": "stdout"})]
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    exporter = OTLPLogExporter(
        endpoint=settings.logs_url,
        headers=dict(settings.otlp_headers),
        timeout=settings.otlp_timeout_s,
        compression=Compression.Gzip
        if settings.otlp_compression == "gzip"
        else Compression.NoCompression,
    )
    return [BoundedLogProcessor(exporter, {**common, "destination": settings.logs_url})]


def _install_log_filters() -> None:
    for name in EXPORTER_LOGGERS:
        logger = logging.getLogger(name)
        if _failures not in logger.filters:
            logger.addFilter(_failures)
    for name in HEADER_WARNING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitFilter) for f in logger.filters):
            logger.addFilter(RateLimitFilter())


def current() -> Telemetry | None:
    """The process's Telemetry once ``configure`` ran (helpers and zero-code use it)."""
    return _current


def set_current(telemetry: Telemetry | None) -> Telemetry | None:
    """Swap the process's Telemetry; returns the previous one (for ``instrumentation.testing``)."""
    global _current
    previous, _current = _current, telemetry
    return previous


def configure(**overrides: Any) -> Telemetry:
    """Set up traces, metrics and logs once for this process; returns the shared handle.

    Keyword overrides are ``InstrumentationSettings`` fields (``service_name=...``) and win
    over the environment. A second call returns the first handle; differing overrides
    are reported, not applied.
    """
    global _current
    with _lock:
        if _current is not None:
            _warn_ignored(_current.settings, overrides)
            return _current
        settings = InstrumentationSettings.from_env(**overrides)
        if settings.sdk_disabled:
            _current = Telemetry(settings=settings, tracer_provider=None)
            return _current
        # Contrib library instrumentors read this once; ask them for the stable names.
        os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")
        _install_log_filters()
        telemetry = build_telemetry(settings, registry=REGISTRY)
        trace.set_tracer_provider(telemetry.tracer_provider)  # type: ignore[arg-type]
        assert telemetry.propagator is not None
        propagate.set_global_textmap(telemetry.propagator)
        if settings.configure_logging:
            _install_logging(telemetry)
        from instrumentation.libraries import instrument_libraries

        telemetry.libraries = instrument_libraries(
            telemetry.tracer_provider, settings.disabled_instrumentations
        )
        atexit.register(telemetry.shutdown)
        _current = telemetry
        return telemetry


def _install_logging(telemetry: Telemetry) -> None:
    from opentelemetry._logs import set_logger_provider

    from instrumentation.logs import OtlpLogBridge, install_logging
    from instrumentation.redaction import Redactor

    settings = telemetry.settings
    bridge = None
    if telemetry.logger_provider is not None:
        set_logger_provider(telemetry.logger_provider)
        bridge = OtlpLogBridge(telemetry.logger_provider)
    redactor = Redactor(settings.redact_keys)
    install_logging(
        settings.service_name, settings.log_level, redactor, bridge, settings.log_stream
    )


def _warn_ignored(settings: InstrumentationSettings, overrides: dict[str, Any]) -> None:
    names = {f.name for f in fields(settings)}
    differing = sorted(
        k for k, v in overrides.items() if k not in names or getattr(settings, k) != v
    )
    if differing:
        _log.warning(
            "telemetry is already configured for this process; ignoring overrides %s "
            "(pass them to the first configure()/instrument() call)",
            differing,
        )


def instrument(app: Any, **overrides: Any) -> Telemetry:
    """Instrument a FastAPI/Starlette, Flask or Django app with one call (idempotent per app)."""
    return configure(**overrides).instrument(app)
