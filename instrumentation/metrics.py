"""Prometheus metrics: HTTP RED, the helpers' cache/shard metrics, self-metrics, exposition.

Names and labels are the contract in docs/telemetry.md. prometheus-client has no
cardinality limit, so every labelled metric goes through ``GuardedMetric``: past the
limit, new label sets fold into one overflow series (every label ``_overflow``) and
``narrows_metric_overflow_total{metric}`` counts the folded observations.

Exemplars (``trace_id``, ``span_id``) exist only in the OpenMetrics format, so
``exposition`` negotiates on ``Accept``: Prometheus asks for OpenMetrics and gets them,
a plain ``curl`` gets the text format without them. In multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``) prometheus-client keeps no exemplars and values are
aggregated over the workers' files.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

__all__ = [
    "DB_BUCKETS",
    "HTTP_BUCKETS",
    "OVERFLOW",
    "GuardedMetric",
    "TelemetryMetrics",
    "multiprocess_dir",
]

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
DB_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10)
OVERFLOW = "_overflow"


def multiprocess_dir() -> str | None:
    """prometheus-client reads this variable at import; we only mirror its decision."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class GuardedMetric:
    """A metric's children cached by label values, with at most ``limit`` label sets.

    The cache also makes the hot path one dict lookup instead of prometheus-client's
    locked ``labels()`` call. The overflow series counts toward the limit.
    """

    __slots__ = ("_children", "_folded", "_limit", "_lock", "_metric", "_overflow", "name")

    def __init__(self, metric: Any, name: str, limit: int, overflow: Counter) -> None:
        self._metric, self.name, self._limit = metric, name, limit
        self._overflow = overflow.labels(name)
        self._children: dict[tuple[str, ...], Any] = {}
        self._folded: Any = None
        self._lock = threading.Lock()

    def labels(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is not None:
            return child
        return self._new_child(values)

    def _new_child(self, values: tuple[str, ...]) -> Any:
        with self._lock:
            child = self._children.get(values)
            if child is not None:
                return child
            if len(self._children) < self._limit - 1:
                child = self._metric.labels(*values)
                self._children[values] = child
                return child
            self._overflow.inc()
            if self._folded is None:
                self._folded = self._metric.labels(*([OVERFLOW] * len(values)))
            return self._folded

    @property
    def series(self) -> int:
        """Distinct label sets kept (the overflow series not included)."""
        return len(self._children)


class TelemetryMetrics:
    """Every metric Narrows emits, registered in one registry (a fresh one per test)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        cardinality_limit: int,
        service_name: str,
        instance_id: str,
    ) -> None:
        self.registry = registry
        self.multiprocess = multiprocess_dir() is not None
        r, limit = registry, cardinality_limit
        overflow = Counter(
            "narrows_metric_overflow",
            "Observations folded into the overflow series by the cardinality guard.",
            ["metric"],
            registry=r,
        )
        self._dropped = Counter(
            "narrows_telemetry_dropped",
            "Spans and log records dropped instead of slowing the app (queue full, export failed).",
            ["signal", "reason"],
            registry=r,
        )

        def guard(metric: Any, name: str) -> GuardedMetric:
            return GuardedMetric(metric, name, limit, overflow)

        self.http_duration = guard(
            Histogram(
                "http_server_request_duration_seconds",
                "Duration of HTTP server requests.",
                ["http_request_method", "http_route", "http_response_status_code"],
                buckets=HTTP_BUCKETS,
                registry=r,
            ),
            "http_server_request_duration_seconds",
        )
        self.http_active = guard(
            Gauge(
                "http_server_active_requests",
                "Number of HTTP server requests in flight.",
                ["http_request_method"],
                registry=r,
                multiprocess_mode="livesum",
            ),
            "http_server_active_requests",
        )
        self.http_exceptions = guard(
            Counter(
                "http_server_exceptions",
                "Exceptions that escaped an HTTP request handler.",
                ["http_route", "error_type"],
                registry=r,
            ),
            "http_server_exceptions_total",
        )
        self.cache_lookups = guard(
            Counter(
                "app_cache_lookups",
                "Cache lookups by outcome (hit, miss, error).",
                ["cache", "result"],
                registry=r,
            ),
            "app_cache_lookups_total",
        )
        self.db_duration = guard(
            Histogram(
                "db_client_operation_duration_seconds",
                "Duration of database client operations (pool wait included).",
                # error_type is empty on success, so errors per shard need no trace sample.
                ["db_system_name", "db_operation_name", "app_shard_id", "error_type"],
                buckets=DB_BUCKETS,
                registry=r,
            ),
            "db_client_operation_duration_seconds",
        )
        self.pool_wait = guard(
            Histogram(
                "app_shard_pool_wait_seconds",
                "Time spent waiting for a shard's pool connection.",
                ["app_shard_id"],
                buckets=DB_BUCKETS,
                registry=r,
            ),
            "app_shard_pool_wait_seconds",
        )
        Gauge(
            "target_info",
            "Target metadata (the OpenTelemetry resource).",
            ["service_name", "service_instance_id"],
            registry=r,
            multiprocess_mode="liveall",
        ).labels(service_name, instance_id).set(1)
        self._dropped_children: dict[tuple[str, str], Any] = {}

    def count_dropped(self, signal: str, reason: str, count: int) -> None:
        """The ``DropCounter`` the export processors call (signal, reason are a fixed set)."""
        key = (signal, reason)
        child = self._dropped_children.get(key)
        if child is None:
            child = self._dropped_children[key] = self._dropped.labels(signal, reason)
        child.inc(count)

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The body and content type for ``Accept``: OpenMetrics (with exemplars) or text."""
        encoder, content_type = choose_encoder(accept)
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return encoder(registry), content_type
        return encoder(self.registry), content_type
