"""One HTTP server request's telemetry in one pass: span, context, RED metrics, access log.

Every framework adapter (pure ASGI, WSGI, Django) calls ``ServerTelemetry.start`` with
what it read from its own request object and ``finish`` with the status, the route
template and any escaping exception. The contrib ASGI instrumentor costs several
spans and two metric paths per request; this is one span, one histogram observation
(with its exemplar) and one gauge, which is what keeps the overhead under the target in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
from opentelemetry.trace import SpanKind, Status, StatusCode

from instrumentation.metrics import TelemetryMetrics
from instrumentation.settings import InstrumentationSettings

__all__ = ["CLIENT_WAIT_MIN_NS", "CLIENT_WAIT_SPAN", "ActiveRequest", "ServerTelemetry"]

_log = logging.getLogger("instrumentation.server")

KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY")
)
#: Headers a propagator may read; extraction runs only when one of them is present.
PROPAGATION_HEADERS = frozenset(
    ("traceparent", "tracestate", "baggage", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled")
)
_SERVER = SpanKind.SERVER
#: A child span for a wait on the client's request body (the body had not arrived when
#: the app asked for it), when it lasted at least CLIENT_WAIT_MIN_NS: without it that
#: time reads as the handler's own code, i.e. as a blocked event loop.
CLIENT_WAIT_SPAN = "http receive"
CLIENT_WAIT_MIN_NS = 1_000_000
_MAX_CLIENT_WAITS = 4
#: Request-controlled values (path, user agent) are cut here: HTTP servers accept ~64 kB,
#: and every queued span would carry them while the collector is away.
MAX_REQUEST_VALUE = 2048


def _cut(value: str) -> str:
    return value if len(value) <= MAX_REQUEST_VALUE else value[:MAX_REQUEST_VALUE]


class _DictGetter(Getter[Mapping[str, str]]):
    """A propagator getter over a ``{lowercase name: value}`` dict (one value per name)."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key.lower())
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


_GETTER = _DictGetter()


def _split_host(host: str) -> tuple[str, int | None]:
    """``Host`` header → (address, port); IPv6 literals come in brackets."""
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[1:end], host[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = host.partition(":")
    return name, int(port) if port.isdigit() and len(port) <= 5 else None


def _copy_baggage(ctx: Any, keys: tuple[str, ...], attrs: dict[str, Any]) -> None:
    """Baggage entries named in ``keys`` become span attributes (short printable values
    only: baggage is whatever the caller sent)."""
    for key in keys:
        value = baggage.get_baggage(key, ctx)
        if isinstance(value, str) and 0 < len(value) <= 128 and value.isprintable():
            attrs[key] = value


class ActiveRequest:
    """The state between ``start`` and ``finish`` (slots: this is made per request)."""

    __slots__ = ("attrs", "client_waits", "method", "span", "started", "token")

    def __init__(
        self, method: str, span: Any, token: Any, started: float, attrs: dict[str, Any]
    ) -> None:
        self.method, self.span, self.token, self.started = method, span, token, started
        self.attrs = attrs
        self.client_waits = 0


class ServerTelemetry:
    """Everything the adapters need, resolved once from a ``Telemetry``."""

    def __init__(
        self,
        settings: InstrumentationSettings,
        tracer_provider: Any,
        propagator: TextMapPropagator,
        metrics: TelemetryMetrics | None,
        access_logger: Any = None,
    ) -> None:
        self.settings = settings
        self.metrics_path = settings.metrics_path if metrics is not None else None
        self._tracer = (
            tracer_provider.get_tracer("narrows.instrumentation.server")
            if tracer_provider is not None
            else trace.NoOpTracer()
        )
        self._propagator = propagator
        self._metrics = metrics
        self._access = access_logger
        #: ``Telemetry.flush``: adapters call it when the app's lifespan ends
        self.flush: Callable[[], bool] | None = None
        patterns = [p for p in settings.excluded_urls if p]
        self._excluded = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
        self._baggage_keys = settings.baggage_span_attributes

    def is_excluded(self, path: str) -> bool:
        """``OTEL_PYTHON_EXCLUDED_URLS`` entries are regexes searched in the path."""
        return self._excluded is not None and self._excluded.search(path) is not None

    def exposition(self, accept: str) -> tuple[bytes, str]:
        assert self._metrics is not None  # only called when metrics_path is set
        return self._metrics.exposition(accept)

    def start(
        self,
        method: str,
        scheme: str,
        path: str,
        headers: Mapping[str, str],
        client: str | None,
        protocol_version: str | None = None,
    ) -> ActiveRequest:
        """Start the SERVER span (continuing an incoming trace) and make it current."""
        original = method
        if method not in KNOWN_METHODS:
            upper = method.upper()
            method = upper if upper in KNOWN_METHODS else "_OTHER"
        attrs: dict[str, Any] = {
            "http.request.method": method,
            "url.scheme": scheme,
            "url.path": _cut(path),
        }
        if method != original:
            attrs["http.request.method_original"] = _cut(original)
        if client:
            attrs["client.address"] = client
        host = headers.get("host")
        if host:
            name, port = _split_host(host)
            attrs["server.address"] = name
            if port is not None:
                attrs["server.port"] = port
        agent = headers.get("user-agent")
        if agent:
            attrs["user_agent.original"] = _cut(agent)
        if protocol_version:
            attrs["network.protocol.version"] = protocol_version
        parent = None
        if not PROPAGATION_HEADERS.isdisjoint(headers):
            try:
                parent = self._propagator.extract(headers, getter=_GETTER)
            except Exception:  # a malformed header starts a new trace, never a 500
                parent = None
            if parent is not None and self._baggage_keys and "baggage" in headers:
                _copy_baggage(parent, self._baggage_keys, attrs)
        # The attributes go on at the end, with the response's, in one validated batch:
        # the SDK's per-call attribute handling is the largest part of a span's cost, and
        # the configured samplers do not look at attributes.
        span = self._tracer.start_span(method, parent, _SERVER)
        token = context.attach(trace.set_span_in_context(span, parent))
        metrics = self._metrics
        if metrics is not None:
            metrics.http_active.labels(method).inc()
        return ActiveRequest(method, span, token, time.perf_counter(), attrs)

    def finish(
        self,
        request: ActiveRequest,
        status: int,
        route: str | None,
        exc: BaseException | None = None,
        *,
        detach: bool = True,
    ) -> None:
        """End the span, record the RED metrics with an exemplar, restore the context.

        ``detach=False`` leaves the context attached (the caller calls ``detach`` when
        the app returns): the ASGI adapter ends the span as the last byte of a response
        goes out, while the app may still run background tasks in that context.
        """
        duration = time.perf_counter() - request.started
        span, method = request.span, request.method
        error_type: str | None = None
        try:
            attrs = request.attrs
            attrs["http.response.status_code"] = status
            if route:
                attrs["http.route"] = route
                span.update_name(f"{method} {route}")
            if exc is not None:
                error_type = type(exc).__qualname__
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{error_type}: {exc}"))
            elif status >= 500:
                error_type = str(status)
                span.set_status(Status(StatusCode.ERROR))
            if error_type is not None:
                attrs["error.type"] = error_type
            span.set_attributes(attrs)
            span.end()
        except Exception:  # telemetry must never turn a response into an error
            _log.debug("ending the server span failed", exc_info=True)
        try:
            self._record(request, span, status, route, exc, error_type, duration)
        except Exception:
            _log.debug("recording request metrics failed", exc_info=True)
        finally:
            if detach:
                context.detach(request.token)

    def client_wait(self, request: ActiveRequest, start_ns: int, end_ns: int) -> None:
        """Record a wait for the client's body as a ``CLIENT_WAIT_SPAN`` child span (at
        most a few per request: a long upload is one wait per chunk)."""
        if request.client_waits >= _MAX_CLIENT_WAITS:
            return
        request.client_waits += 1
        try:
            parent = trace.set_span_in_context(request.span)
            span = self._tracer.start_span(
                CLIENT_WAIT_SPAN, parent, SpanKind.INTERNAL, start_time=start_ns
            )
            span.end(end_time=end_ns)
        except Exception:  # telemetry must never turn a request into an error
            _log.debug("recording a client wait failed", exc_info=True)

    def detach(self, request: ActiveRequest) -> None:
        context.detach(request.token)

    def late_exception(self, request: ActiveRequest, route: str | None, exc: BaseException) -> None:
        """An exception after the response was complete (a background task): counted only."""
        if self._metrics is not None:
            self._metrics.http_exceptions.labels(route or "", type(exc).__qualname__).inc()

    def _record(
        self,
        request: ActiveRequest,
        span: Any,
        status: int,
        route: str | None,
        exc: BaseException | None,
        error_type: str | None,
        duration: float,
    ) -> None:
        """Metrics and the access line, still inside the request's context (trace ids)."""
        method = request.method
        metrics = self._metrics
        if metrics is not None:
            label_route = route or ""
            ctx = span.get_span_context()
            exemplar = (
                {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
                if ctx.trace_flags.sampled and not metrics.multiprocess
                else None
            )
            metrics.http_duration.labels(method, label_route, str(status)).observe(
                duration, exemplar
            )
            metrics.http_active.labels(method).dec()
            if exc is not None:
                metrics.http_exceptions.labels(label_route, error_type or "").inc()
        if self._access is not None:
            self._access.info(
                "http.request",
                http_method=method,
                http_route=route,
                status=status,
                duration_ms=round(duration * 1000, 3),
            )
