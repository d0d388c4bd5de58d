"""The Jaeger query API v3 over HTTP, as documented in fixtures/jaeger/api-v3/README.md.

Canonical camelCase parameters with Jaeger's deprecated snake_case aliases, the same
validation messages (``malformed parameter NAME: ...``), the same error body
(``{"error": {"httpCode", "message"}}``) and the same 404 ``No traces found`` when a get or
a search matches nothing; trace summaries answer an empty list instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.query.http import error, guarded, ok
from collector.query.params import (
    BadParam,
    Bounds,
    parse_attributes,
    parse_bool,
    parse_duration,
    parse_time,
)
from collector.query.runner import QueryRunner
from collector.store import reader

__all__ = ["MAX_SEARCH_DEPTH", "JaegerV3Api"]

MAX_SEARCH_DEPTH = 1000
DEFAULT_SEARCH_DEPTH = 20
_TRACE_ID = re.compile(r"[0-9a-fA-F]{1,32}")
_DIGITS = re.compile(r"[0-9]+")


def _param(q: Mapping[str, str], canonical: str, *aliases: str) -> tuple[str, str]:
    """(value, the name it came under); canonical wins, empty means absent (as in Jaeger)."""
    if q.get(canonical):
        return q[canonical], canonical
    for alias in aliases:
        if q.get(alias):
            return q[alias], alias
    return "", canonical


def parse_find(q: Mapping[str, str], bounds: Bounds) -> reader.TraceQuery:
    service, _ = _param(q, "query.serviceName", "query.service_name")
    operation, _ = _param(q, "query.operationName", "query.operation_name")
    tmin, tmin_name = _param(q, "query.startTimeMin", "query.start_time_min")
    tmax, tmax_name = _param(q, "query.startTimeMax", "query.start_time_max")
    if not tmin or not tmax:
        raise BadParam(
            "query.startTimeMin", "query.startTimeMin and query.startTimeMax are required"
        )
    start_min, start_max = parse_time(tmin_name, tmin), parse_time(tmax_name, tmax)
    if start_min >= start_max:
        raise BadParam(tmax_name, "must be after query.startTimeMin")
    if start_max - start_min > bounds.max_range_ns:
        raise BadParam(tmin_name, f"the range may span at most {bounds.max_range_ns / 3.6e12:g}h")
    depth_raw, depth_name = _param(q, "query.searchDepth", "query.search_depth", "query.num_traces")
    depth = DEFAULT_SEARCH_DEPTH
    if depth_raw:
        if not _DIGITS.fullmatch(depth_raw):
            raise BadParam(
                depth_name, f'strconv.ParseUint: parsing "{depth_raw[:32]}": invalid syntax'
            )
        # Clamped like every limit; a 10 kB number is not converted (Python refuses
        # int() of over 4300 digits).
        depth = MAX_SEARCH_DEPTH if len(depth_raw) > 9 else int(depth_raw)
        depth = min(max(depth, 1), MAX_SEARCH_DEPTH)
    dmin_raw, dmin_name = _param(q, "query.durationMin", "query.duration_min")
    dmax_raw, dmax_name = _param(q, "query.durationMax", "query.duration_max")
    dmin = parse_duration(dmin_name, dmin_raw) if dmin_raw else None
    dmax = parse_duration(dmax_name, dmax_raw) if dmax_raw else None
    if dmin is not None and dmax is not None and dmax < dmin:
        raise BadParam(dmax_name, "must not be less than query.durationMin")
    raw, raw_name = _param(q, "query.rawTraces", "query.raw_traces")
    if raw:
        parse_bool(raw_name, raw)
    attrs = (
        parse_attributes("query.attributes", q["query.attributes"])
        if q.get("query.attributes")
        else {}
    )
    return reader.TraceQuery(
        start_min_ns=start_min,
        start_max_ns=start_max,
        service=service or None,
        operation=operation or None,
        duration_min_ns=dmin,
        duration_max_ns=dmax,
        attributes=tuple(attrs.items()),
        limit=depth,
    )


class JaegerV3Api:
    def __init__(self, runner: QueryRunner, bounds: Bounds) -> None:
        self._runner = runner
        self._bounds = bounds

    def routes(self) -> list[Route]:
        return [
            Route("/api/v3/services", guarded(self.services), methods=["GET"]),
            Route("/api/v3/operations", guarded(self.operations), methods=["GET"]),
            Route("/api/v3/traces/{trace_id}", guarded(self.get_trace), methods=["GET"]),
            Route("/api/v3/traces", guarded(self.find_traces), methods=["GET"]),
            Route("/api/v3/trace-summaries", guarded(self.trace_summaries), methods=["GET"]),
        ]

    async def services(self, _: Request) -> Response:
        return ok({"services": await self._runner.run(reader.services)})

    async def operations(self, request: Request) -> Response:
        q = request.query_params
        service = q.get("service", "")
        kind, _ = _param(q, "spanKind", "span_kind")
        ops = await self._runner.run(reader.operations, service, kind.lower() or None)
        return ok({"operations": [{"name": n, "spanKind": k or "internal"} for n, k in ops]})

    async def get_trace(self, request: Request) -> Response:
        raw = request.path_params["trace_id"]
        if not _TRACE_ID.fullmatch(raw):
            raise BadParam("trace_id", f"{raw[:64]!r} is not a hex trace id of up to 32 digits")
        q = request.query_params
        start, start_name = _param(q, "startTime", "start_time")
        end, end_name = _param(q, "endTime", "end_time")
        raw_traces, raw_name = _param(q, "rawTraces", "raw_traces")
        if raw_traces:
            parse_bool(raw_name, raw_traces)
        result = await self._runner.run(
            reader.get_traces,
            [int(raw, 16)],
            parse_time(start_name, start) if start else None,
            parse_time(end_name, end) if end else None,
        )
        if not result["resourceSpans"]:
            return error(404, "No traces found")
        return ok({"result": result})

    async def find_traces(self, request: Request) -> Response:
        query = parse_find(request.query_params, self._bounds)
        ids = await self._runner.run(reader.find_trace_ids, query)
        result = await self._runner.run(reader.get_traces, ids)
        if not result["resourceSpans"]:
            return error(404, "No traces found")
        return ok({"result": result})

    async def trace_summaries(self, request: Request) -> Response:
        query = parse_find(request.query_params, self._bounds)
        ids = await self._runner.run(reader.find_trace_ids, query)
        return ok({"summaries": await self._runner.run(reader.summaries, ids)})
