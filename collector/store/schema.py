"""The DuckDB schema: one row per span, common attributes as columns, the rest as JSON."""

from __future__ import annotations

import duckdb

__all__ = ["SPAN_COLUMNS", "create_schema"]

#: Column order of the spans table; the writer builds Arrow batches in this order.
SPAN_COLUMNS: tuple[str, ...] = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "service_name",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "duration_ns",
    "status_code",
    "status_message",
    "attributes",
    "resource",
    "scope",
    "events",
    "links",
    "trace_state",
    "received_ns",
)

_DDL = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id        VARCHAR NOT NULL,   -- 32 lowercase hex
    span_id         VARCHAR NOT NULL,   -- 16 lowercase hex
    parent_span_id  VARCHAR NOT NULL,   -- '' for a root
    service_name    VARCHAR NOT NULL,
    name            VARCHAR NOT NULL,
    kind            TINYINT NOT NULL,   -- OTLP SpanKind number
    start_ns        BIGINT  NOT NULL,
    end_ns          BIGINT  NOT NULL,
    duration_ns     BIGINT  NOT NULL,
    status_code     TINYINT NOT NULL,   -- OTLP StatusCode number
    status_message  VARCHAR NOT NULL,
    attributes      VARCHAR NOT NULL,   -- OTLP/JSON KeyValue list, kept exactly as received
    resource        VARCHAR NOT NULL,   -- OTLP/JSON resource attributes
    scope           VARCHAR NOT NULL,   -- OTLP/JSON InstrumentationScope
    events          VARCHAR NOT NULL,
    links           VARCHAR NOT NULL,
    trace_state     VARCHAR NOT NULL,
    received_ns     BIGINT  NOT NULL
);
"""


def create_schema(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(_DDL)
