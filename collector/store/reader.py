"""Trace reads: Jaeger-style search, whole traces by id, summaries; rows → OTLP/JSON.

Get-trace first reads the arrival range of the trace from the small ``trace_index`` table
and then scans ``spans`` only within that range (``received_ns`` grows with insertion
order, so DuckDB's zone maps skip every other row group) — no index to maintain on the
hot write path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from collector.flatten.common import PROMOTED, PROMOTED_BY_COLUMN
from collector.flatten.values import stored_to_json

__all__ = ["TraceQuery", "find_trace_ids", "get_traces", "operations", "services", "summaries"]

_PROMOTED_COLS = list(PROMOTED_BY_COLUMN)
_SPAN_COLS = (
    "trace_id, span_id, parent_span_id, trace_state, flags, name, kind, start_ns, end_ns,"
    " status_code, status_message, attributes, events, links, dropped_attributes,"
    " dropped_events, dropped_links, resource_id, scope_id, " + ", ".join(_PROMOTED_COLS)
)
_KIND_TO_NAME = {0: "", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_NAME_TO_KIND = {v: k for k, v in _KIND_TO_NAME.items() if v}
_WHICH_JSON = {
    "string_value": "stringValue",
    "int_value": "intValue",
    "bool_value": "boolValue",
    "double_value": "doubleValue",
}


def services(cur: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        r[0] for r in cur.execute("SELECT DISTINCT service_name FROM spans ORDER BY 1").fetchall()
    ]


def operations(
    cur: duckdb.DuckDBPyConnection, service: str, span_kind: str | None
) -> list[tuple[str, str]]:
    where, params = ["service_name = ?"], [service]
    if span_kind:
        where.append("kind = ?")
        params.append(_NAME_TO_KIND.get(span_kind, -1))  # type: ignore[arg-type]
    rows = cur.execute(
        f"SELECT DISTINCT name, kind FROM spans WHERE {' AND '.join(where)} ORDER BY 1, 2", params
    ).fetchall()
    return [(name, _KIND_TO_NAME.get(kind, "")) for name, kind in rows]


@dataclass(frozen=True)
class TraceQuery:
    start_min_ns: int
    start_max_ns: int
    service: str | None = None
    operation: str | None = None
    duration_min_ns: int | None = None
    duration_max_ns: int | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    limit: int = 20


def _attr_match(key: str, value: str, params: list[object]) -> str:
    """A span matches when the pair is in its attributes, resource, scope, events or links."""
    spots: list[str] = []
    if key in PROMOTED:
        spots.append(f"CAST(s.{PROMOTED[key][0]} AS VARCHAR) = ?")
        params.append(value)
    lam = "len(list_filter({}, lambda x: x.k = ? AND x.v = ?)) > 0"
    for col in ("s.attributes", "r.attributes", "c.attributes"):
        spots.append(lam.format(col))
        params += [key, value]
    for col in ("s.events", "s.links"):
        spots.append(f"len(list_filter({col}, lambda e: {lam.format('e.attributes')})) > 0")
        params += [key, value]
    return "(" + " OR ".join(spots) + ")"


def find_trace_ids(cur: duckdb.DuckDBPyConnection, q: TraceQuery) -> list[int]:
    """Traces with at least one span matching every criterion, most recent first."""
    where = ["s.start_ns >= ?", "s.start_ns <= ?"]
    params: list[object] = [q.start_min_ns, q.start_max_ns]
    if q.service:
        where.append("s.service_name = ?")
        params.append(q.service)
    if q.operation:
        where.append("s.name = ?")
        params.append(q.operation)
    if q.duration_min_ns:
        where.append("s.duration_ns >= ?")
        params.append(q.duration_min_ns)
    if q.duration_max_ns:
        where.append("s.duration_ns <= ?")
        params.append(q.duration_max_ns)
    joins = ""
    if q.attributes:
        joins = " LEFT JOIN resources r USING (resource_id) LEFT JOIN scopes c USING (scope_id)"
        for key, value in q.attributes:
            where.append(_attr_match(key, value, params))
    sql = (
        f"SELECT s.trace_id, max(s.start_ns) AS t FROM spans s{joins}"
        f" WHERE {' AND '.join(where)} GROUP BY s.trace_id ORDER BY t DESC LIMIT ?"
    )
    return [int(r[0]) for r in cur.execute(sql, [*params, q.limit]).fetchall()]


def _attrs(stored: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [{"key": a["k"], "value": stored_to_json(a["t"], a["v"])} for a in stored or []]


def _span_json(row: dict[str, Any]) -> dict[str, Any]:
    attributes = []
    for col in _PROMOTED_COLS:
        value = row[col]
        if value is not None:
            key, which = PROMOTED_BY_COLUMN[col]
            jv = str(value) if which == "int_value" else value
            attributes.append({"key": key, "value": {_WHICH_JSON[which]: jv}})
    attributes += _attrs(row["attributes"])
    span: dict[str, Any] = {
        "traceId": f"{row['trace_id']:032x}",
        "spanId": f"{row['span_id']:016x}",
    }
    if row["trace_state"]:
        span["traceState"] = row["trace_state"]
    if row["parent_span_id"]:
        span["parentSpanId"] = f"{row['parent_span_id']:016x}"
    if row["flags"]:
        span["flags"] = row["flags"]
    span["name"] = row["name"]
    if row["kind"]:
        span["kind"] = row["kind"]
    span["startTimeUnixNano"] = str(row["start_ns"])
    span["endTimeUnixNano"] = str(row["end_ns"])
    if attributes:
        span["attributes"] = attributes
    if row["dropped_attributes"]:
        span["droppedAttributesCount"] = row["dropped_attributes"]
    if row["events"]:
        span["events"] = [
            {
                k: v
                for k, v in (
                    ("timeUnixNano", str(e["time_ns"])),
                    ("name", e["name"]),
                    ("attributes", _attrs(e["attributes"])),
                    ("droppedAttributesCount", e["dropped_attributes"]),
                )
                if v
            }
            for e in row["events"]
        ]
    if row["dropped_events"]:
        span["droppedEventsCount"] = row["dropped_events"]
    if row["links"]:
        span["links"] = [
            {
                k: v
                for k, v in (
                    ("traceId", lk["trace_id"]),
                    ("spanId", lk["span_id"]),
                    ("traceState", lk["trace_state"]),
                    ("attributes", _attrs(lk["attributes"])),
                    ("droppedAttributesCount", lk["dropped_attributes"]),
                    ("flags", lk["flags"]),
                )
                if v
            }
            for lk in row["links"]
        ]
    if row["dropped_links"]:
        span["droppedLinksCount"] = row["dropped_links"]
    status: dict[str, Any] = {}
    if row["status_message"]:
        status["message"] = row["status_message"]
    if row["status_code"]:
        status["code"] = row["status_code"]
    span["status"] = status
    return span


def get_traces(
    cur: duckdb.DuckDBPyConnection,
    trace_ids: Sequence[int],
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> dict[str, Any]:
    """Every span of ``trace_ids`` as OTLP/JSON ``{"resourceSpans": [...]}`` (empty if none)."""
    if not trace_ids:
        return {"resourceSpans": []}
    ids = [str(t) for t in trace_ids]
    win = cur.execute(
        "SELECT min(min_received_ns), max(max_received_ns) FROM trace_index"
        " WHERE trace_id IN (SELECT unnest(?::VARCHAR[])::UHUGEINT)",
        [ids],
    ).fetchone()
    if not win or win[0] is None:
        return {"resourceSpans": []}
    where = ["s.received_ns BETWEEN ? AND ?"]
    params: list[object] = [win[0], win[1]]
    if len(ids) == 1:
        where.append("s.trace_id = ?::UHUGEINT")
        params.append(ids[0])
    else:
        where.append("s.trace_id IN (SELECT unnest(?::VARCHAR[])::UHUGEINT)")
        params.append(ids)
    if start_ns is not None:
        where.append("s.start_ns >= ?")
        params.append(start_ns)
    if end_ns is not None:
        where.append("s.start_ns <= ?")
        params.append(end_ns)
    rel = cur.execute(
        f"SELECT {_SPAN_COLS} FROM spans s WHERE {' AND '.join(where)}"
        " ORDER BY s.trace_id, s.start_ns",
        params,
    )
    names = [d[0] for d in rel.description]
    rows = [dict(zip(names, r, strict=True)) for r in rel.fetchall()]
    return group_otlp(cur, rows)


def group_otlp(cur: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Span rows → ``resourceSpans`` grouped by resource, then scope (OTLP/JSON)."""
    rids = sorted({r["resource_id"] for r in rows})
    sids = sorted({r["scope_id"] for r in rows})
    resources = {
        rid: (attrs, dropped)
        for rid, attrs, dropped in cur.execute(
            "SELECT resource_id, attributes, dropped_attributes FROM resources"
            " WHERE resource_id IN (SELECT unnest(?::UBIGINT[]))",
            [rids],
        ).fetchall()
    }
    scopes = {
        sid: (name, version, attrs, dropped)
        for sid, name, version, attrs, dropped in cur.execute(
            "SELECT scope_id, name, version, attributes, dropped_attributes FROM scopes"
            " WHERE scope_id IN (SELECT unnest(?::UBIGINT[]))",
            [sids],
        ).fetchall()
    }
    out: dict[int, dict[int, list[dict[str, Any]]]] = {}
    for r in rows:
        out.setdefault(r["resource_id"], {}).setdefault(r["scope_id"], []).append(_span_json(r))
    result = []
    for rid, by_scope in out.items():
        attrs, dropped = resources.get(rid, ([], 0))
        resource: dict[str, Any] = {}
        if attrs:
            resource["attributes"] = _attrs(attrs)
        if dropped:
            resource["droppedAttributesCount"] = dropped
        scope_spans = []
        for sid, spans in by_scope.items():
            name, version, sattrs, sdropped = scopes.get(sid, ("", "", [], 0))
            scope: dict[str, Any] = {}
            if name:
                scope["name"] = name
            if version:
                scope["version"] = version
            if sattrs:
                scope["attributes"] = _attrs(sattrs)
            if sdropped:
                scope["droppedAttributesCount"] = sdropped
            scope_spans.append({"scope": scope, "spans": spans})
        result.append({"resource": resource, "scopeSpans": scope_spans})
    return {"resourceSpans": result}


def summaries(cur: duckdb.DuckDBPyConnection, trace_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Jaeger's trace summaries, computed in SQL, in the order of ``trace_ids``."""
    if not trace_ids:
        return []
    win = cur.execute(
        "SELECT min(min_received_ns), max(max_received_ns) FROM trace_index"
        " WHERE trace_id IN (SELECT unnest(?::VARCHAR[])::UHUGEINT)",
        [[str(t) for t in trace_ids]],
    ).fetchone()
    if not win or win[0] is None:
        return []
    rows = cur.execute(
        """
        WITH s AS (
            SELECT trace_id, span_id, parent_span_id, service_name, name, start_ns, end_ns,
                   status_code FROM spans
            WHERE received_ns BETWEEN ? AND ?
              AND trace_id IN (SELECT unnest(?::VARCHAR[])::UHUGEINT)
        ),
        ids AS (SELECT DISTINCT trace_id, span_id FROM s),
        roots AS (
            SELECT s.trace_id, arg_min(s.service_name, s.start_ns) AS svc,
                   arg_min(s.name, s.start_ns) AS op
            FROM s WHERE s.parent_span_id = 0
               OR NOT EXISTS (SELECT 1 FROM ids WHERE ids.trace_id = s.trace_id
                                                  AND ids.span_id = s.parent_span_id)
            GROUP BY s.trace_id
        ),
        orphans AS (
            SELECT s.trace_id, count(*) AS n FROM s
            WHERE s.parent_span_id <> 0 AND NOT EXISTS (
                SELECT 1 FROM ids
                WHERE ids.trace_id = s.trace_id AND ids.span_id = s.parent_span_id)
            GROUP BY s.trace_id
        ),
        per_service AS (
            SELECT trace_id, service_name, count(*) AS n,
                   count(*) FILTER (WHERE status_code = 2) AS e
            FROM s GROUP BY trace_id, service_name
        )
        SELECT s.trace_id, any_value(roots.svc), any_value(roots.op), min(s.start_ns),
               max(s.end_ns), count(*), count(*) FILTER (WHERE s.status_code = 2),
               coalesce(any_value(orphans.n), 0),
               (SELECT list({'name': p.service_name, 'spanCount': p.n, 'errorSpanCount': p.e}
                            ORDER BY p.service_name)
                FROM per_service p WHERE p.trace_id = s.trace_id)
        FROM s LEFT JOIN roots USING (trace_id) LEFT JOIN orphans USING (trace_id)
        GROUP BY s.trace_id
        """,
        [win[0], win[1], [str(t) for t in trace_ids]],
    ).fetchall()
    by_id = {int(r[0]): r for r in rows}
    out = []
    for tid in trace_ids:
        r = by_id.get(int(tid))
        if r is None:
            continue
        out.append(
            {
                "traceId": f"{int(r[0]):032x}",
                "rootServiceName": r[1] or "",
                "rootOperationName": r[2] or "",
                "minStartTimeUnixNano": str(r[3]),
                "maxEndTimeUnixNano": str(r[4]),
                "spanCount": r[5],
                "errorSpanCount": r[6],
                "orphanSpanCount": r[7],
                "services": r[8] or [],
            }
        )
    return out
