"""The DuckDB schema, designed for the questions the dashboard asks.

- ``spans``: one row per span. Ids are integers (``trace_id UHUGEINT``, ``span_id UBIGINT``)
  so that filters compare numbers, not 32-character strings. The attributes the analysis
  groups by (route, status code, shard, cache hit, ``db.*``, pool wait) are typed columns;
  every other attribute is in ``attributes STRUCT(k, t, v)[]`` (``t`` = OTLP value type,
  ``v`` = the value as text). Events and links are nested lists on the span row, so a span
  and everything it owns is one row even when two spans share an id (Zipkin shared spans).
- ``resources`` / ``scopes``: stored once per distinct value, referenced by id.
- ``trace_index``: one row per (trace, batch) with the arrival range, so get-trace scans a
  small table and then only the row groups of ``spans`` that arrived in that range.
- ``logs``, ``metric_points``, ``exemplars``: the other two signals; metric names follow the
  Prometheus conventions whether the points came from OTLP or from a scrape.
- ``ingest_state``: the write-ahead-log position committed with the data (see store/wal.py).
- ``request_digests``: digests of recently acknowledged request bodies, so a retried request
  is stored once even across a restart.
"""

from __future__ import annotations

import duckdb

from collector.flatten.common import PROMOTED

__all__ = ["ATTR_SQL", "PROMOTED_SQL_TYPES", "TABLES", "create_schema"]

ATTR_SQL = "STRUCT(k VARCHAR, t UTINYINT, v VARCHAR)[]"
_SQL_TYPE = {"string": "VARCHAR", "int32": "INTEGER", "bool": "BOOLEAN", "double": "DOUBLE"}
PROMOTED_SQL_TYPES = {col: _SQL_TYPE[str(typ)] for col, _, typ in PROMOTED.values()}
_PROMOTED_DDL = ",\n".join(f"    {col} {sql}" for col, sql in PROMOTED_SQL_TYPES.items())

_DDL = f"""
CREATE TABLE IF NOT EXISTS spans (
    trace_id UHUGEINT NOT NULL,
    span_id UBIGINT NOT NULL,
    parent_span_id UBIGINT NOT NULL,      -- 0 for a root
    trace_state VARCHAR,
    flags UINTEGER,
    service_name VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    kind UTINYINT NOT NULL,               -- OTLP SpanKind number
    start_ns BIGINT NOT NULL,
    end_ns BIGINT NOT NULL,
    duration_ns BIGINT NOT NULL,
    status_code UTINYINT NOT NULL,        -- OTLP StatusCode number (2 = ERROR)
    status_message VARCHAR,
{_PROMOTED_DDL},
    attributes {ATTR_SQL},
    events STRUCT(time_ns BIGINT, name VARCHAR, attributes {ATTR_SQL},
                  dropped_attributes UINTEGER)[],
    links STRUCT(trace_id VARCHAR, span_id VARCHAR, trace_state VARCHAR,
                 attributes {ATTR_SQL}, dropped_attributes UINTEGER, flags UINTEGER)[],
    dropped_attributes UINTEGER,
    dropped_events UINTEGER,
    dropped_links UINTEGER,
    resource_id UBIGINT NOT NULL,
    scope_id UBIGINT NOT NULL,
    received_ns BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS resources (
    resource_id UBIGINT PRIMARY KEY,
    service_name VARCHAR NOT NULL,
    attributes {ATTR_SQL},
    dropped_attributes UINTEGER
);
CREATE TABLE IF NOT EXISTS scopes (
    scope_id UBIGINT PRIMARY KEY,
    name VARCHAR,
    version VARCHAR,
    attributes {ATTR_SQL},
    dropped_attributes UINTEGER
);
CREATE TABLE IF NOT EXISTS trace_index (
    trace_id UHUGEINT NOT NULL,
    min_received_ns BIGINT NOT NULL,
    max_received_ns BIGINT NOT NULL,
    min_start_ns BIGINT NOT NULL,
    max_end_ns BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS logs (
    time_ns BIGINT NOT NULL,              -- timeUnixNano, or observedTimeUnixNano when unset
    observed_ns BIGINT,
    service_name VARCHAR NOT NULL,
    severity_number UTINYINT,
    severity_text VARCHAR,
    body VARCHAR,                         -- a string body as is; other bodies as OTLP/JSON
    body_type UTINYINT,
    trace_id UHUGEINT,
    span_id UBIGINT,
    flags UINTEGER,
    event_name VARCHAR,
    attributes {ATTR_SQL},
    dropped_attributes UINTEGER,
    resource_id UBIGINT NOT NULL,
    scope_id UBIGINT NOT NULL,
    received_ns BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS metric_points (
    name VARCHAR NOT NULL,                -- Prometheus series name, e.g. ..._seconds_bucket
    family VARCHAR NOT NULL,              -- the metric family, e.g. ..._seconds
    type VARCHAR NOT NULL,                -- counter, gauge, histogram, summary, ...
    unit VARCHAR,
    service_name VARCHAR,
    labels MAP(VARCHAR, VARCHAR),
    time_ns BIGINT NOT NULL,
    value DOUBLE NOT NULL,
    source VARCHAR NOT NULL,              -- otlp or scrape
    received_ns BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS exemplars (
    name VARCHAR NOT NULL,
    family VARCHAR NOT NULL,
    service_name VARCHAR,
    labels MAP(VARCHAR, VARCHAR),
    time_ns BIGINT NOT NULL,
    value DOUBLE NOT NULL,
    trace_id VARCHAR,
    span_id VARCHAR,
    exemplar_labels MAP(VARCHAR, VARCHAR),
    received_ns BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS ingest_state (
    name VARCHAR PRIMARY KEY,
    value BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS request_digests (
    digest BLOB NOT NULL,
    received_ns BIGINT NOT NULL
);
"""

#: Tables holding telemetry, with the column that says when each row arrived.
TABLES = {
    "spans": "received_ns",
    "logs": "received_ns",
    "metric_points": "received_ns",
    "exemplars": "received_ns",
    "trace_index": "max_received_ns",
    "request_digests": "received_ns",
}


def create_schema(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(_DDL)
