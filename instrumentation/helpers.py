"""Context managers that give shard queries and cache lookups their spans and metrics.

The demo uses them; so can any app that shards or caches. Attribute and metric names are
in docs/telemetry.md. Before ``configure()`` ran (a unit test, a script) the spans go to
the global OpenTelemetry API (a no-op unless someone set a provider) and no metric is
recorded; nothing here ever raises because of telemetry.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from instrumentation.setup import current

__all__ = ["CacheLookup", "ShardQuery", "cache_lookup", "shard_span"]

_SCOPE = "narrows.instrumentation"


def _tracer() -> trace.Tracer:
    telemetry = current()
    if telemetry is not None:
        return telemetry.tracer(_SCOPE)
    return trace.get_tracer(_SCOPE)


def _exemplar(span: Span) -> dict[str, str] | None:
    ctx = span.get_span_context()
    if not ctx.trace_flags.sampled:
        return None
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


@dataclass
class ShardQuery:
    """Yielded by ``shard_span``; set ``pool_wait_s`` to the time spent waiting for a
    connection, so queueing is recorded apart from query time."""

    span: Span
    pool_wait_s: float = 0.0


@contextmanager
def shard_span(
    shard_id: int | str,
    db: str,
    *,
    system: str = "sqlite",
    operation: str = "SELECT",
    collection: str = "items",
) -> Iterator[ShardQuery]:
    """A CLIENT span around one query on one shard (pool wait included in the span).

    On exit: ``app.pool.wait_ms`` on the span, and ``db_client_operation_duration_seconds``
    (whole block, with an exemplar) and ``app_shard_pool_wait_seconds`` observed.
    An exception is recorded on the span (status ERROR, ``error.type``), labels the
    duration with ``error_type`` and is re-raised. A ``BaseException`` that is not an
    ``Exception`` (a cancelled sibling of a failed fan-out, ``KeyboardInterrupt``) is no
    error of this query: the SDK leaves such a span's status unset, and so do we.
    """
    shard = str(shard_id)
    started = time.perf_counter()
    error_type = ""
    with _tracer().start_as_current_span(
        f"{operation} {collection}",
        kind=SpanKind.CLIENT,
        attributes={
            "db.system.name": system,
            "db.namespace": db,
            "db.operation.name": operation,
            "db.collection.name": collection,
            "app.shard.id": shard,
        },
    ) as span:
        query = ShardQuery(span)
        try:
            yield query
        except Exception as exc:  # the SDK records it and sets ERROR on the way out
            error_type = type(exc).__qualname__
            span.set_attribute("error.type", error_type)
            raise
        finally:
            span.set_attribute("app.pool.wait_ms", query.pool_wait_s * 1000.0)
            labels = (system, operation, shard, error_type)
            _observe_shard(span, labels, time.perf_counter() - started, query)


def _observe_shard(
    span: Span, labels: tuple[str, str, str, str], duration: float, query: ShardQuery
) -> None:
    """``labels``: system, operation, shard id, error type ("" on success)."""
    telemetry = current()
    metrics = telemetry.metrics if telemetry is not None else None
    if metrics is None:
        return
    exemplar = None if metrics.multiprocess else _exemplar(span)
    metrics.db_duration.labels(*labels).observe(duration, exemplar)
    metrics.pool_wait.labels(labels[2]).observe(max(0.0, float(query.pool_wait_s)))


@dataclass
class CacheLookup:
    """Set ``hit`` inside the block; the span records it on exit."""

    span: Span
    hit: bool = False


@contextmanager
def cache_lookup(name: str, *, system: str | None = None) -> Iterator[CacheLookup]:
    """A span around one cache read; ``app.cache.hit`` comes from ``lookup.hit``.

    Counts ``app_cache_lookups_total{cache=name, result=hit|miss|error}``. An exception
    inside the block counts as ``error``, marks the span ERROR with ``error.type`` and is
    re-raised. ``system`` (e.g. ``redis``) becomes ``db.system.name`` for a remote cache.
    """
    attrs: dict[str, Any] = {"app.cache.name": name}
    if system:
        attrs["db.system.name"] = system
    kind = SpanKind.CLIENT
    # The span records the exception itself below, with error.type, so the SDK must not.
    with _tracer().start_as_current_span(
        f"cache.get {name}",
        kind=kind,
        attributes=attrs,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        lookup = CacheLookup(span)
        result = "miss"
        try:
            yield lookup
            result = "hit" if lookup.hit else "miss"
        except BaseException as exc:
            result = "error"
            span.record_exception(exc)
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__qualname__}: {exc}"))
            raise
        finally:
            span.set_attribute("app.cache.hit", lookup.hit if result != "error" else False)
            telemetry = current()
            if telemetry is not None and telemetry.metrics is not None:
                telemetry.metrics.cache_lookups.labels(name, result).inc()
