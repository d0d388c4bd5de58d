"""The client-side metrics of calls between services (names in docs/telemetry.md).

Registered once per registry next to the instrumentation's own metrics (so they share
``/metrics``); a process with two upstreams (the gateway: catalog and orders) shares one
set, told apart by the ``upstream`` label (the callee's ``service.name``).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from opentelemetry.trace import Span
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from instrumentation import current
from instrumentation.metrics import HTTP_BUCKETS

__all__ = ["UpstreamMetrics", "upstream_metrics"]

_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, UpstreamMetrics] = (
    weakref.WeakKeyDictionary()
)


class UpstreamMetrics:
    def __init__(self, registry: CollectorRegistry, *, exemplars: bool = True) -> None:
        self.exemplars = exemplars
        self.requests = Counter(
            "app_upstream_requests",
            "Calls to an upstream replica, one per attempt, by outcome "
            "(ok, error, timeout; rejected: not sent, circuit open).",
            ["upstream", "instance", "outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "app_upstream_retries",
            "Attempts that were retries of an earlier failed attempt.",
            ["upstream"],
            registry=registry,
        )
        self.healthy = Gauge(
            "app_upstream_healthy",
            "1 while the replica is in the balancer's rotation, 0 while ejected.",
            ["upstream", "instance"],
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.ejections = Counter(
            "app_upstream_ejections",
            "Times a replica was taken out of rotation.",
            ["upstream", "instance"],
            registry=registry,
        )
        self.circuit = Gauge(
            "app_circuit_state",
            "Circuit breaker per upstream: 0 closed, 1 half-open, 2 open.",
            ["upstream"],
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.client_duration = Histogram(
            "http_client_request_duration_seconds",
            "Duration of HTTP client requests (one per attempt).",
            ["http_request_method", "server_address", "http_response_status_code"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )

    def observe_client(
        self, method: str, address: str, status: int | None, seconds: float, span: Span
    ) -> None:
        exemplar: dict[str, str] | None = None
        ctx = span.get_span_context()
        if self.exemplars and ctx.trace_flags.sampled:
            exemplar = {
                "trace_id": format(ctx.trace_id, "032x"),
                "span_id": format(ctx.span_id, "016x"),
            }
        child: Any = self.client_duration.labels(method, address, str(status or ""))
        child.observe(seconds, exemplar)


def upstream_metrics(registry: CollectorRegistry | None = None) -> UpstreamMetrics | None:
    """The process's set (on the instrumentation's registry), or None when metrics are off."""
    if registry is None:
        telemetry = current()
        if telemetry is None or telemetry.metrics is None:
            return None
        registry = telemetry.metrics.registry
        exemplars = not telemetry.metrics.multiprocess
    else:
        exemplars = True
    with _lock:
        found = _by_registry.get(registry)
        if found is None:
            found = _by_registry[registry] = UpstreamMetrics(registry, exemplars=exemplars)
        return found
