"""Read queries over the spans table; values are always bound parameters."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb

__all__ = ["SpanReader", "SpanRow", "TraceSummary"]


@dataclass(frozen=True)
class SpanRow:
    trace_id: str
    span_id: str
    parent_span_id: str
    service_name: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: list[dict[str, Any]]
    resource: list[dict[str, Any]]
    scope: dict[str, Any]
    events: list[dict[str, Any]]
    links: list[dict[str, Any]]
    trace_state: str


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    root_service: str
    root_operation: str
    start_ns: int
    end_ns: int
    span_count: int
    error_count: int
    services: list[tuple[str, int, int]]


_SPAN_SELECT = (
    "SELECT trace_id, span_id, parent_span_id, service_name, name, kind, start_ns, end_ns, "
    "status_code, status_message, attributes, resource, scope, events, links, trace_state "
    "FROM spans"
)


class SpanReader:
    """Each call opens its own cursor, so queries run safely from a thread pool."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self._conn = conn

    def services(self) -> list[str]:
        cur = self._conn.cursor()
        return [
            r[0]
            for r in cur.execute("SELECT DISTINCT service_name FROM spans ORDER BY 1").fetchall()
        ]

    def get_trace(self, trace_id: str) -> list[SpanRow]:
        cur = self._conn.cursor()
        rows = cur.execute(
            _SPAN_SELECT + " WHERE trace_id = ? ORDER BY start_ns", [trace_id]
        ).fetchall()
        return [_row(r) for r in rows]

    def find_trace_ids(
        self,
        service: str | None,
        operation: str | None,
        start_min_ns: int,
        start_max_ns: int,
        limit: int,
    ) -> list[str]:
        where = ["start_ns >= ?", "start_ns <= ?"]
        params: list[object] = [start_min_ns, start_max_ns]
        if service:
            where.append("service_name = ?")
            params.append(service)
        if operation:
            where.append("name = ?")
            params.append(operation)
        sql = (
            "SELECT trace_id, max(start_ns) AS t FROM spans WHERE "
            + " AND ".join(where)
            + " GROUP BY trace_id ORDER BY t DESC LIMIT ?"
        )
        cur = self._conn.cursor()
        return [r[0] for r in cur.execute(sql, [*params, limit]).fetchall()]

    def summaries(self, trace_ids: list[str]) -> list[TraceSummary]:
        if not trace_ids:
            return []
        cur = self._conn.cursor()
        rows = cur.execute(
            "SELECT trace_id, service_name, name, parent_span_id, start_ns, end_ns, status_code "
            "FROM spans WHERE trace_id IN (SELECT unnest(?))",
            [trace_ids],
        ).fetchall()
        by_trace: dict[str, list[tuple[Any, ...]]] = {}
        for r in rows:
            by_trace.setdefault(r[0], []).append(r)
        out = []
        for tid in trace_ids:
            spans = by_trace.get(tid)
            if not spans:
                continue
            ids = {s[0] for s in spans}
            roots = [s for s in spans if s[3] == "" or s[3] not in ids]
            root = min(roots or spans, key=lambda s: s[4])
            services: dict[str, list[int]] = {}
            for s in spans:
                entry = services.setdefault(s[1], [0, 0])
                entry[0] += 1
                entry[1] += s[6] == 2
            out.append(
                TraceSummary(
                    trace_id=tid,
                    root_service=root[1],
                    root_operation=root[2],
                    start_ns=min(s[4] for s in spans),
                    end_ns=max(s[5] for s in spans),
                    span_count=len(spans),
                    error_count=sum(s[6] == 2 for s in spans),
                    services=[(k, v[0], v[1]) for k, v in sorted(services.items())],
                )
            )
        return out


def _row(r: tuple[Any, ...]) -> SpanRow:
    return SpanRow(
        trace_id=r[0],
        span_id=r[1],
        parent_span_id=r[2],
        service_name=r[3],
        name=r[4],
        kind=r[5],
        start_ns=r[6],
        end_ns=r[7],
        status_code=r[8],
        status_message=r[9],
        attributes=json.loads(r[10]),
        resource=json.loads(r[11]),
        scope=json.loads(r[12]),
        events=json.loads(r[13]),
        links=json.loads(r[14]),
        trace_state=r[15],
    )
