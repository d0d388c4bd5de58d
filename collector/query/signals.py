"""Narrows endpoints over logs, metrics, exemplars and the store itself.

``/api/narrows/logs``, ``/api/narrows/metrics``, ``/api/narrows/metrics/series``,
``/api/narrows/exemplars``, ``/api/narrows/stats``. Contract: docs/query-api.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import duckdb
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.flatten.values import stored_to_json
from collector.query.http import guarded, ok
from collector.query.params import BadParam, Bounds, format_ns, parse_int, parse_range
from collector.query.runner import QueryRunner

__all__ = ["SignalsApi"]

_LEVELS = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "warning": 13, "error": 17, "fatal": 21}


def _labels(q: Mapping[str, str], name: str = "match") -> dict[str, str]:
    if not q.get(name):
        return {}
    try:
        value = json.loads(q[name])
    except (ValueError, RecursionError) as exc:
        raise BadParam(name, f"not JSON: {str(exc)[:100]}") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadParam(name, "must be a JSON object of string label values")
    return value


def _hex_id(name: str, raw: str, width: int) -> int:
    if not raw or len(raw) > width or any(c not in "0123456789abcdefABCDEF" for c in raw):
        raise BadParam(name, f"must be up to {width} hex digits")
    return int(raw, 16)


def _attrs_json(attrs: list[dict[str, Any]] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in attrs or []:
        value = stored_to_json(a["t"], a["v"])
        out[a["k"]] = next(iter(value.values()), None)
    return out


def _logs(cur: duckdb.DuckDBPyConnection, q: Mapping[str, str], bounds: Bounds, now: int) -> Any:
    where: list[str] = []
    params: list[object] = []
    if q.get("traceId"):
        where.append("trace_id = ?")
        params.append(_hex_id("traceId", q["traceId"], 32))
        if q.get("spanId"):
            where.append("span_id = ?")
            params.append(_hex_id("spanId", q["spanId"], 16))
    if not q.get("traceId") or q.get("start") or q.get("end"):
        start_ns, end_ns = parse_range(q, bounds, now)
        where += ["time_ns >= ?", "time_ns < ?"]
        params += [start_ns, end_ns]
    if q.get("service"):
        where.append("service_name = ?")
        params.append(q["service"])
    if q.get("level"):
        level = q["level"].lower()
        if level.isascii() and level.isdigit() and len(level) <= 2 and 1 <= int(level) <= 24:
            floor = int(level)
        elif level in _LEVELS:
            floor = _LEVELS[level]
        else:
            raise BadParam("level", "trace, debug, info, warn, error, fatal or 1-24")
        where.append("severity_number >= ?")
        params.append(floor)
    if q.get("q"):
        text = q["q"]
        if len(text) > 256:
            raise BadParam("q", "at most 256 characters")
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("body ILIKE ? ESCAPE '\\'")
        params.append(f"%{escaped}%")
    limit = parse_int(q, "limit", 100, 1, 1000)
    rows = cur.execute(
        "SELECT time_ns, service_name, severity_number, severity_text, body, trace_id, span_id,"
        " attributes, event_name FROM logs"
        f" WHERE {' AND '.join(where) or 'TRUE'} ORDER BY time_ns DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    return {
        "logs": [
            {
                "time": format_ns(t),
                "time_ns": t,
                "service": svc,
                "severity_number": sn,
                "severity_text": st,
                "body": body,
                "traceId": f"{tid:032x}" if tid is not None else None,
                "spanId": f"{sid:016x}" if sid is not None else None,
                "attributes": _attrs_json(attrs),
                "event_name": ev or None,
            }
            for t, svc, sn, st, body, tid, sid, attrs, ev in rows
        ]
    }


def _metric_names(
    cur: duckdb.DuckDBPyConnection, q: Mapping[str, str], bounds: Bounds, now: int
) -> Any:
    start_ns, end_ns = parse_range(q, bounds, now)
    rows = cur.execute(
        "SELECT family, any_value(type), any_value(unit), list(DISTINCT name ORDER BY name),"
        " count(*) FROM metric_points WHERE time_ns >= ? AND time_ns < ?"
        " GROUP BY family ORDER BY family LIMIT 2000",
        [start_ns, end_ns],
    ).fetchall()
    return {
        "metrics": [
            {"family": f, "type": t, "unit": u or "", "names": names, "points": n}
            for f, t, u, names, n in rows
        ]
    }


def _series(cur: duckdb.DuckDBPyConnection, q: Mapping[str, str], bounds: Bounds, now: int) -> Any:
    name = q.get("name", "")
    if not name:
        raise BadParam("name", "required")
    start_ns, end_ns = parse_range(q, bounds, now)
    fn = q.get("fn", "raw")
    if fn not in ("raw", "last", "rate", "increase"):
        raise BadParam("fn", "raw, last, rate or increase")
    step = 0
    if fn != "raw":
        from collector.query.aggregates import _step

        step = _step(q, start_ns, end_ns, bounds)
    where = ["name = ?", "time_ns >= ?", "time_ns < ?"]
    params: list[object] = [name, start_ns, end_ns]
    for key, value in _labels(q).items():
        where.append("labels[?] = ?")
        params += [key, value]
    max_series = parse_int(q, "limit", 100, 1, 500)
    base = f"SELECT labels, time_ns, value FROM metric_points WHERE {' AND '.join(where)}"
    if fn == "raw":
        sql = f"""
            WITH p AS ({base}),
            top AS (SELECT DISTINCT labels FROM p ORDER BY labels::VARCHAR LIMIT ?)
            SELECT labels, list([time_ns::DOUBLE, value] ORDER BY time_ns)
            FROM p SEMI JOIN top USING (labels) GROUP BY labels ORDER BY labels::VARCHAR
        """
        rows = cur.execute(sql, [*params, max_series]).fetchall()
        series = [
            {"labels": dict(labels), "points": [[int(t), v] for t, v in pts][: bounds.max_points]}
            for labels, pts in rows
        ]
    else:
        agg = "last(value ORDER BY time_ns)" if fn == "last" else "sum(inc)"
        sql = f"""
            WITH p AS ({base}),
            top AS (SELECT DISTINCT labels FROM p ORDER BY labels::VARCHAR LIMIT ?),
            d AS (
                SELECT labels, time_ns, value,
                       CASE WHEN lag(value) OVER w IS NULL THEN 0
                            WHEN value < lag(value) OVER w THEN value
                            ELSE value - lag(value) OVER w END AS inc
                FROM p SEMI JOIN top USING (labels)
                WINDOW w AS (PARTITION BY labels ORDER BY time_ns)
            )
            SELECT labels, (time_ns - ?) // ? AS b, {agg} FROM d
            GROUP BY labels, b ORDER BY labels::VARCHAR, b
        """
        rows = cur.execute(sql, [*params, max_series, start_ns, step]).fetchall()
        by: dict[str, dict[str, Any]] = {}
        div = step / 1e9 if fn == "rate" else 1.0
        for labels, b, v in rows:
            key = json.dumps(dict(labels), sort_keys=True)
            s = by.setdefault(key, {"labels": dict(labels), "points": []})
            s["points"].append([start_ns + int(b) * step, v / div])
        series = list(by.values())
    return {"name": name, "fn": fn, "step_s": step / 1e9 if step else None, "series": series}


def _exemplars(
    cur: duckdb.DuckDBPyConnection, q: Mapping[str, str], bounds: Bounds, now: int
) -> Any:
    start_ns, end_ns = parse_range(q, bounds, now)
    where = ["time_ns >= ?", "time_ns < ?"]
    params: list[object] = [start_ns, end_ns]
    if q.get("name"):
        where.append("(name = ? OR family = ?)")
        params += [q["name"], q["name"]]
    for key, value in _labels(q).items():
        where.append("labels[?] = ?")
        params += [key, value]
    limit = parse_int(q, "limit", 100, 1, 1000)
    rows = cur.execute(
        "SELECT name, labels, time_ns, value, trace_id, span_id, exemplar_labels"
        f" FROM exemplars WHERE {' AND '.join(where)} ORDER BY time_ns DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    return {
        "exemplars": [
            {
                "name": n,
                "labels": dict(lb or {}),
                "time": format_ns(t),
                "time_ns": t,
                "value": v,
                "traceId": tid,
                "spanId": sid,
                "exemplarLabels": dict(el or {}),
            }
            for n, lb, t, v, tid, sid, el in rows
        ]
    }


class SignalsApi:
    """Routes for logs, metrics, exemplars and ``/api/narrows/stats``."""

    def __init__(
        self, runner: QueryRunner, bounds: Bounds, stats: Callable[[duckdb.DuckDBPyConnection], Any]
    ) -> None:
        self._runner = runner
        self._bounds = bounds
        self._stats = stats

    def routes(self) -> list[Route]:
        return [
            Route("/api/narrows/logs", guarded(self._route(_logs))),
            Route("/api/narrows/metrics", guarded(self._route(_metric_names))),
            Route("/api/narrows/metrics/series", guarded(self._route(_series))),
            Route("/api/narrows/exemplars", guarded(self._route(_exemplars))),
            Route("/api/narrows/stats", guarded(self.stats)),
        ]

    def _route(self, fn: Any) -> Any:
        async def handler(request: Request) -> Response:
            q = dict(request.query_params)
            return ok(await self._runner.run(fn, q, self._bounds, time.time_ns()))

        return handler

    async def stats(self, _: Request) -> Response:
        return ok(await self._runner.run(self._stats))
