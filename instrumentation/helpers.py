"""Context managers that give shard queries and cache lookups their spans and metrics.

The demo uses them; so can any app that shards or caches. Attribute and metric names are
in docs/telemetry.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

__all__ = ["CacheLookup", "ShardQuery", "cache_lookup", "shard_span"]

_tracer = trace.get_tracer("narrows.instrumentation")


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
    """A CLIENT span around one query on one shard (pool wait included in the span)."""
    with _tracer.start_as_current_span(
        f"{operation} {collection}",
        kind=SpanKind.CLIENT,
        attributes={
            "db.system.name": system,
            "db.namespace": db,
            "db.operation.name": operation,
            "db.collection.name": collection,
            "app.shard.id": str(shard_id),
        },
    ) as span:
        query = ShardQuery(span)
        try:
            yield query
        finally:
            span.set_attribute("app.pool.wait_ms", query.pool_wait_s * 1000.0)


@dataclass
class CacheLookup:
    """Set ``hit`` inside the block; the span records it on exit."""

    span: Span
    hit: bool = False


@contextmanager
def cache_lookup(name: str, *, system: str | None = None) -> Iterator[CacheLookup]:
    """A span around one cache read; ``app.cache.hit`` comes from ``lookup.hit``."""
    attrs: dict[str, str] = {"app.cache.name": name}
    if system:
        attrs["db.system.name"] = system
    with _tracer.start_as_current_span(
        f"cache.get {name}", kind=SpanKind.CLIENT, attributes=attrs
    ) as span:
        lookup = CacheLookup(span)
        try:
            yield lookup
        finally:
            span.set_attribute("app.cache.hit", lookup.hit)
