"""Logs: structlog JSON on stdout with trace ids, stdlib logging bridged, secrets redacted,
the same records shipped as OTLP logs.

One pipeline for both sources: structlog events are handed to stdlib logging
(``ProcessorFormatter.wrap_for_formatter``) and stdlib records get the same keys through
``foreign_pre_chain``, so both end in the one ``ProcessorFormatter`` that redacts, emits
the OTLP record and renders the JSON line. Keys are those of docs/telemetry.md:
``timestamp``, ``level``, ``event``, ``logger``, ``service.name``, ``trace_id``, ``span_id``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber

from instrumentation.redaction import Redactor

__all__ = [
    "OtlpLogBridge",
    "add_service_name",
    "add_trace_context",
    "adopt_server_loggers",
    "build_formatter",
    "install_logging",
    "shared_processors",
]

EventDict = MutableMapping[str, Any]
_HANDLER_MARK = "_narrows_handler"
#: Never ship these loggers' records over OTLP: an exporter failing would feed itself, and a
#: server's own access line repeats what the span (and NARROWS_ACCESS_LOG) already say.
_NOT_EXPORTED = (
    "opentelemetry",
    "instrumentation.export",
    "urllib3",
    "uvicorn.access",
    "gunicorn.access",
    "hypercorn.access",
)
#: Web servers that give their loggers their own plain-text handlers (and stop them from
#: propagating): their tracebacks quote exception messages and their access lines the
#: query string (``?token=…``), so they are routed through the redacting JSON pipeline.
SERVER_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "gunicorn.error",
    "gunicorn.access",
    "hypercorn.error",
    "hypercorn.access",
)
_SEVERITY = {
    "debug": (SeverityNumber.DEBUG, "DEBUG"),
    "info": (SeverityNumber.INFO, "INFO"),
    "warning": (SeverityNumber.WARN, "WARN"),
    "warn": (SeverityNumber.WARN, "WARN"),
    "error": (SeverityNumber.ERROR, "ERROR"),
    "exception": (SeverityNumber.ERROR, "ERROR"),
    "critical": (SeverityNumber.FATAL, "FATAL"),
}
_RESERVED = frozenset(
    ("timestamp", "level", "event", "logger", "service.name", "trace_id", "span_id")
)


def add_trace_context(logger: Any, method: str, event_dict: EventDict) -> EventDict:
    """``trace_id``/``span_id`` of the span current at the logging call, when valid."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict["trace_id"] = format(ctx.trace_id, "032x")
        event_dict["span_id"] = format(ctx.span_id, "016x")
    return event_dict


def add_service_name(service_name: str) -> structlog.types.Processor:
    def processor(logger: Any, method: str, event_dict: EventDict) -> EventDict:
        event_dict["service.name"] = service_name
        return event_dict

    return processor


def shared_processors(service_name: str) -> list[structlog.types.Processor]:
    """What both structlog events and stdlib records get at the logging call."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        add_service_name(service_name),
        add_trace_context,
    ]


class OtlpLogBridge:
    """A structlog processor that emits each (already redacted) event as an OTLP log record.

    The record is created inside the logging call, so the SDK takes ``trace_id`` and
    ``span_id`` from the current context, as docs/telemetry.md promises.
    """

    def __init__(self, logger_provider: Any) -> None:
        self._provider = logger_provider
        self._loggers: dict[str, Any] = {}

    def __call__(self, logger: Any, method: str, event_dict: EventDict) -> EventDict:
        name = str(event_dict.get("logger") or "root")
        if name.startswith(_NOT_EXPORTED):
            return event_dict
        with contextlib.suppress(Exception):  # a log line must never fail the caller
            otel_logger = self._loggers.get(name)
            if otel_logger is None:
                otel_logger = self._loggers[name] = self._provider.get_logger(name)
            severity, text = _SEVERITY.get(
                str(event_dict.get("level", "info")), (SeverityNumber.INFO, "INFO")
            )
            attributes = {
                k: v if isinstance(v, str | bool | int | float) else str(v)
                for k, v in event_dict.items()
                if k not in _RESERVED and not k.startswith("_")
            }
            otel_logger.emit(
                severity_number=severity,
                severity_text=text,
                body=str(event_dict.get("event", "")),
                attributes=attributes,
            )
        return event_dict


def build_formatter(
    service_name: str, redactor: Redactor, bridge: OtlpLogBridge | None
) -> structlog.stdlib.ProcessorFormatter:
    """The one formatter every record passes: redact → OTLP → JSON line."""
    processors: list[structlog.types.Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redactor,
    ]
    if bridge is not None:
        processors.append(bridge)
    processors.append(structlog.processors.JSONRenderer(default=str))
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors(service_name), processors=processors
    )


class _StandardStream(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout``/``sys.stderr`` is at the time of each record.

    A handler holding the stream object from set-up time writes into a closed file once
    a test runner or a daemoniser has swapped the stream.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    @property
    def stream(self) -> TextIO:
        return sys.stderr if self._name == "stderr" else sys.stdout

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it
        return None


def adopt_server_loggers(names: tuple[str, ...] = SERVER_LOGGERS) -> None:
    """Let the web server's loggers propagate to ours instead of printing unredacted text.

    Runs when telemetry is configured; a server that configures its logging after that
    (``uvicorn.run(app)`` with its default ``log_config``) needs ``log_config=None``.
    """
    for name in names:
        logger = logging.getLogger(name)
        for existing in list(logger.handlers):
            if not getattr(existing, _HANDLER_MARK, False):
                logger.removeHandler(existing)
        logger.propagate = True


#: Client libraries that log every request at INFO; quieted unless the app set a level.
CHATTY_LOGGERS = ("httpx", "httpcore", "urllib3")


def install_logging(
    service_name: str,
    level: str,
    redactor: Redactor,
    bridge: OtlpLogBridge | None,
    stream: TextIO | str = "stdout",
) -> logging.Handler:
    """Configure structlog and put our handler on the root logger (once per process).

    ``stream`` is ``"stdout"`` (the default: logs are an app's output stream),
    ``"stderr"`` (for command-line tools whose stdout is their result) or a file object.
    """
    structlog.configure(
        processors=[
            *shared_processors(service_name),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, _HANDLER_MARK, False):
            root.removeHandler(existing)
    handler: logging.StreamHandler = (  # type: ignore[type-arg]
        _StandardStream(stream) if isinstance(stream, str) else logging.StreamHandler(stream)
    )
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(build_formatter(service_name, redactor, bridge))
    root.addHandler(handler)
    root.setLevel(level)
    adopt_server_loggers()
    if logging.getLevelName(level) <= logging.INFO:
        for name in CHATTY_LOGGERS:
            chatty = logging.getLogger(name)
            if chatty.level == logging.NOTSET:
                chatty.setLevel(logging.WARNING)
    return handler
