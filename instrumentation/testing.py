"""Telemetry for tests: in-memory exporters, a fresh registry, no global touched.

``with telemetry_for_tests() as t: t.telemetry.instrument(app)`` then read
``t.spans()``, ``t.sample(...)`` or ``t.scrape()``. Helpers (``shard_span``,
``cache_lookup``) see this telemetry for the duration of the block.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from instrumentation.settings import InstrumentationSettings
from instrumentation.setup import Telemetry, build_telemetry, set_current

__all__ = ["TestTelemetry", "telemetry_for_tests"]

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


@dataclass
class TestTelemetry:
    """What a test reads back."""

    __test__ = False  # not a pytest test class despite the name

    telemetry: Telemetry
    span_exporter: InMemorySpanExporter
    log_exporter: InMemoryLogRecordExporter
    registry: CollectorRegistry

    def spans(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.span_exporter.get_finished_spans())

    def logs(self) -> tuple[Any, ...]:
        return tuple(self.log_exporter.get_finished_logs())

    def sample(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        return self.registry.get_sample_value(name, dict(labels or {}))

    def scrape(self, accept: str = OPENMETRICS) -> tuple[str, str]:
        """``(body, content type)`` as ``/metrics`` would answer for ``accept``."""
        assert self.telemetry.metrics is not None
        body, ctype = self.telemetry.metrics.exposition(accept)
        return body.decode(), ctype


@contextmanager
def telemetry_for_tests(
    environ: Mapping[str, str] | None = None, **overrides: Any
) -> Iterator[TestTelemetry]:
    """Settings from ``environ`` (default: empty, not ``os.environ``) plus overrides."""
    settings = InstrumentationSettings.from_env(environ or {}, **overrides)
    spans, registry = InMemorySpanExporter(), CollectorRegistry()
    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    telemetry = build_telemetry(
        settings,
        registry=registry,
        span_processors=[SimpleSpanProcessor(spans)],
        log_processors=[SimpleLogRecordProcessor(logs)],
    )
    previous = set_current(telemetry)
    try:
        yield TestTelemetry(telemetry, spans, logs, registry)
    finally:
        set_current(previous)
        telemetry.shutdown(1.0)
