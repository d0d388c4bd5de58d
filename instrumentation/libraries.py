"""Switches on the contrib instrumentors for client libraries that are importable.

Each one is isolated: an instrumentor that fails to import or to patch logs one
warning and is skipped, and the others still run. ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
names the ones to leave off (the contrib entry-point names: ``httpx``, ``requests``,
``sqlite3``, ``psycopg``, ``redis``, ``logging``).

Note: the sqlite3 instrumentation traces ``cursor().execute()`` only, not the
``Connection.execute()`` shortcut.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LIBRARIES", "Library", "instrument_libraries"]

_log = logging.getLogger("instrumentation.libraries")


@dataclass(frozen=True)
class Library:
    """A client library and the contrib instrumentor class that traces it."""

    name: str
    module: str
    instrumentor: str
    kwargs: dict[str, Any] = field(default_factory=dict)


LIBRARIES: tuple[Library, ...] = (
    Library("httpx", "httpx", "opentelemetry.instrumentation.httpx:HTTPXClientInstrumentor"),
    Library("requests", "requests", "opentelemetry.instrumentation.requests:RequestsInstrumentor"),
    Library("sqlite3", "sqlite3", "opentelemetry.instrumentation.sqlite3:SQLite3Instrumentor"),
    Library("psycopg", "psycopg", "opentelemetry.instrumentation.psycopg:PsycopgInstrumentor"),
    Library("redis", "redis", "opentelemetry.instrumentation.redis:RedisInstrumentor"),
    # Puts otelTraceID/otelSpanID on stdlib records for users' own format strings;
    # Narrows' JSON lines carry trace_id/span_id either way. Its own OTLP handler stays
    # off: Narrows' pipeline already ships every record once (a second handler on the
    # root logger doubles them and loops on structlog's dict messages).
    Library(
        "logging",
        "logging",
        "opentelemetry.instrumentation.logging:LoggingInstrumentor",
        {"inject_trace_context": True, "enable_log_auto_instrumentation": False},
    ),
)


def _load(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def instrument_libraries(
    tracer_provider: Any,
    disabled: Iterable[str] = (),
    libraries: Iterable[Library] = LIBRARIES,
) -> dict[str, str]:
    """Instrument every importable library; returns ``{name: "on" | "skipped: why"}``."""
    off = {d.strip().lower() for d in disabled}
    outcome: dict[str, str] = {}
    for lib in libraries:
        if lib.name in off or "*" in off:
            outcome[lib.name] = "skipped: disabled by OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
            continue
        try:
            if importlib.util.find_spec(lib.module) is None:
                outcome[lib.name] = "skipped: not installed"
                continue
            instrumentor = _load(lib.instrumentor)()
            if getattr(instrumentor, "is_instrumented_by_opentelemetry", False):
                outcome[lib.name] = "on"  # already on (zero-code, or a second configure)
                continue
            instrumentor.instrument(tracer_provider=tracer_provider, **lib.kwargs)
            outcome[lib.name] = "on"
        except Exception as exc:  # one broken instrumentor must not stop the others
            outcome[lib.name] = f"skipped: {type(exc).__name__}: {exc}"
            _log.warning(
                "skipping the %s instrumentation: %s: %s", lib.name, type(exc).__name__, exc
            )
    return outcome
