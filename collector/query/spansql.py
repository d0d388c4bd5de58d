"""SQL fragments over ``spans`` for an attribute key, a filter set, a trace set.

Keys become column names only through fixed mappings; every user value (keys of generic
attributes included) is a bound parameter, never spliced into the SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow as pa

from collector.flatten.common import PROMOTED
from collector.query.params import BadParam, parse_attributes, parse_duration

__all__ = ["KIND_NAMES", "SpanFilter", "attr_expr", "attr_raw", "span_filter"]

KIND_NAMES = ["unspecified", "internal", "server", "client", "producer", "consumer"]
_KIND_SQL = (
    "CASE {} WHEN 1 THEN 'internal' WHEN 2 THEN 'server' WHEN 3 THEN 'client' "
    "WHEN 4 THEN 'producer' WHEN 5 THEN 'consumer' ELSE 'unspecified' END"
)
_STATUS_SQL = "CASE {} WHEN 2 THEN 'ERROR' WHEN 1 THEN 'OK' ELSE 'UNSET' END"
#: Pseudo-keys: key → (column of ``spans``, template turning it into the text value).
_FIXED = {
    "service.name": ("service_name", "{}"),
    "span.name": ("name", "{}"),
    "span.kind": ("kind", _KIND_SQL),
    "status": ("status_code", _STATUS_SQL),
    "otel.status_code": ("status_code", _STATUS_SQL),
}


def attr_raw(key: str, params: list[object]) -> tuple[str, str]:
    """``(expression, text template)`` for attribute ``key`` of span ``s``: the expression in
    its stored type (cheap to group by: no per-row cast) and a ``str.format`` template that
    turns it into the VARCHAR value ``attr_expr`` would give (NULL when absent)."""
    if key in _FIXED:
        col, text = _FIXED[key]
        return f"s.{col}", text
    if key in PROMOTED:
        col, _, typ = PROMOTED[key]
        return f"s.{col}", "{}" if typ == pa.string() else "CAST({} AS VARCHAR)"
    if not key or len(key) > 256:
        raise BadParam("key", "an attribute key is 1 to 256 characters")
    params.append(key)
    return "list_extract(list_filter(s.attributes, lambda x: x.k = ?), 1).v", "{}"


def attr_expr(key: str, params: list[object]) -> str:
    """A VARCHAR expression for attribute ``key`` of span ``s`` (NULL when absent)."""
    raw, text = attr_raw(key, params)
    return text.format(raw)


@dataclass
class SpanFilter:
    """WHERE conditions over ``spans s`` and their bound parameters, in order."""

    where: list[str] = field(default_factory=list)
    params: list[object] = field(default_factory=list)

    def add(self, cond: str, *values: object) -> None:
        self.where.append(cond)
        self.params.extend(values)

    def sql(self) -> str:
        return " AND ".join(self.where) if self.where else "TRUE"


def span_filter(q: Mapping[str, str], start_ns: int, end_ns: int, prefix: str = "") -> SpanFilter:
    """The filters every span aggregate accepts: time, service, operation, kind, status,
    attributes and duration (parameter names documented in docs/query-api.md)."""
    f = SpanFilter()
    f.add("s.start_ns >= ?", start_ns)
    f.add("s.start_ns < ?", end_ns)
    if q.get(prefix + "service"):
        f.add("s.service_name = ?", q[prefix + "service"])
    if q.get(prefix + "operation"):
        f.add("s.name = ?", q[prefix + "operation"])
    if q.get(prefix + "kind"):
        kind = q[prefix + "kind"].lower()
        if kind not in KIND_NAMES:
            raise BadParam(prefix + "kind", f"one of {', '.join(KIND_NAMES)}")
        f.add("s.kind = ?", KIND_NAMES.index(kind))
    if q.get(prefix + "status"):
        status = q[prefix + "status"].upper()
        codes = {"UNSET": 0, "OK": 1, "ERROR": 2}
        if status not in codes:
            raise BadParam(prefix + "status", "one of UNSET, OK, ERROR")
        f.add("s.status_code = ?", codes[status])
    if q.get(prefix + "durationMin"):
        f.add(
            "s.duration_ns >= ?", parse_duration(prefix + "durationMin", q[prefix + "durationMin"])
        )
    if q.get(prefix + "durationMax"):
        f.add(
            "s.duration_ns <= ?", parse_duration(prefix + "durationMax", q[prefix + "durationMax"])
        )
    if q.get(prefix + "attributes"):
        for key, value in parse_attributes(prefix + "attributes", q[prefix + "attributes"]).items():
            params: list[object] = []
            expr = attr_expr(key, params)
            f.add(f"{expr} = ?", *params, value)
    return f
