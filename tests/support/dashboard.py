"""A known workload for dashboard tests, sent with the official OTLP exporters.

Traces shaped like the demo's (docs/telemetry.md): a server span per request, a cache
lookup, shard queries; shard "2" is slow and waits for its pool; every fourth order fails
with an exception event and an ERROR log. Times are explicit, so every count, duration and
percentile the pages show is known in advance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from opentelemetry import trace as trace_api
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

__all__ = ["SERVICE", "Workload", "feed_workload"]

SERVICE = "shop"
SLOW_SHARD = "2"
MS = 1_000_000


@dataclass
class Workload:
    service: str
    start_ns: int
    end_ns: int
    slow_shard: str = SLOW_SHARD
    by_route: dict[str, list[str]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    durations_ms: dict[str, float] = field(default_factory=dict)
    logs: int = 0
    shard_queries: dict[str, int] = field(default_factory=dict)
    cache_hits: int = 0
    cache_misses: int = 0


def _shard_ms(shard: str) -> tuple[float, float]:
    """(pool wait, query time) in ms: the slow shard queues and works longer."""
    return (30.0, 40.0) if shard == SLOW_SHARD else (0.5, 3.0)


def feed_workload(
    otlp_url: str,
    requests: int = 120,
    spacing_ms: float = 1500,
) -> Workload:
    """Send ``requests`` traces ending about now; returns what was sent."""
    resource = Resource.create({"service.name": SERVICE, "service.instance.id": "shop-1"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_url}/v1/traces"))
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{otlp_url}/v1/logs"))
    )
    tracer = tracer_provider.get_tracer("tests.dashboard")
    logger = logger_provider.get_logger("tests.dashboard")
    now = time.time_ns()
    start = now - int(requests * spacing_ms * MS) - 2_000 * MS
    work = Workload(SERVICE, start, now)
    orders = 0
    for i in range(requests):
        t0 = start + int(i * spacing_ms * MS)
        kind = ("get", "get", "get", "get", "get", "get", "get", "search", "search", "order")[
            i % 10
        ]
        route, method = {
            "get": ("/items/{item_id}", "GET"),
            "search": ("/search", "GET"),
            "order": ("/orders", "POST"),
        }[kind]
        name = f"{method} {route}"
        failed = kind == "order" and orders % 4 == 0
        orders += kind == "order"
        server = tracer.start_span(
            name,
            kind=SpanKind.SERVER,
            start_time=t0,
            attributes={
                "http.request.method": method,
                "http.route": route,
                "url.path": route.replace("{item_id}", str(i + 1)),
                "url.scheme": "http",
            },
        )
        ctx = trace_api.set_span_in_context(server)
        t = t0 + MS
        if kind == "get":
            hit = i % 3 != 0
            cache = tracer.start_span(
                "cache.get items",
                context=ctx,
                kind=SpanKind.INTERNAL,
                start_time=t,
                attributes={"app.cache.name": "items", "app.cache.hit": hit},
            )
            cache.end(t + MS // 5)
            t += MS // 5
            work.cache_hits += hit
            work.cache_misses += not hit
            if not hit:
                t = _query(tracer, ctx, t, str(i % 4), "SELECT", work)
        elif kind == "search":
            ends = [_query(tracer, ctx, t, str(s), "SELECT", work) for s in range(4)]
            t = max(ends)
        else:
            for step in range(2):
                t = _query(tracer, ctx, t, str((i + step) % 4), "INSERT", work)
        end = t + MS
        status = 500 if failed else (201 if kind == "order" else 200)
        server.set_attribute("http.response.status_code", status)
        if failed:
            server.set_attribute("error.type", "500")
            server.add_event(
                "exception",
                {"exception.type": "ShardUnavailable", "exception.message": "shard timed out"},
                timestamp=end - MS // 2,
            )
            server.set_status(Status(StatusCode.ERROR, "shard timed out"))
            work.failed.append(format(server.get_span_context().trace_id, "032x"))
        log_args = {"context": ctx, "timestamp": end - MS // 2}
        logger.emit(
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
            body=f"handled {name}",
            attributes={"http.route": route},
            **log_args,  # type: ignore[arg-type]
        )
        work.logs += 1
        if failed:
            logger.emit(
                severity_number=SeverityNumber.ERROR,
                severity_text="ERROR",
                body="order failed: shard timed out",
                **log_args,  # type: ignore[arg-type]
            )
            work.logs += 1
        server.end(end)
        trace_id = format(server.get_span_context().trace_id, "032x")
        work.by_route.setdefault(name, []).append(trace_id)
        work.durations_ms[trace_id] = (end - t0) / MS
    tracer_provider.shutdown()
    logger_provider.shutdown()
    return work


def _query(
    tracer: trace_api.Tracer,
    ctx: object,
    t: int,
    shard: str,
    operation: str,
    work: Workload,
) -> int:
    wait, query = _shard_ms(shard)
    end = t + int((wait + query) * MS)
    span = tracer.start_span(
        f"{operation} items",
        context=ctx,  # type: ignore[arg-type]
        kind=SpanKind.CLIENT,
        start_time=t,
        attributes={
            "db.system.name": "sqlite",
            "db.namespace": f"shard{shard}",
            "db.operation.name": operation,
            "db.collection.name": "items",
            "app.shard.id": shard,
            "app.pool.wait_ms": wait,
        },
    )
    span.end(end)
    work.shard_queries[shard] = work.shard_queries.get(shard, 0) + 1
    return end
