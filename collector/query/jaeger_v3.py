"""The Jaeger query API v3 (HTTP/JSON), as documented in fixtures/jaeger/api-v3/README.md."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from collector.store.reader import SpanReader, SpanRow

__all__ = ["JaegerV3Api", "spans_to_otlp_json"]

_TRACE_ID = re.compile(r"^[0-9a-f]{1,32}$")
MAX_SEARCH_DEPTH = 1000


def _error(code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"httpCode": code, "message": message}}, status_code=code)


class _BadParam(Exception):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"malformed parameter {name}: {reason}")


def _rfc3339_ns(name: str, raw: str | None) -> int:
    if not raw:
        raise _BadParam(name, "required")
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", raw)
    if not m:
        raise _BadParam(name, f"{raw!r} is not an RFC 3339 timestamp")
    try:
        base = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(4) == "Z" else m.group(4)))
    except ValueError as exc:
        raise _BadParam(name, str(exc)) from None
    frac = (m.group(3) or "").ljust(9, "0")
    return int(base.timestamp()) * 1_000_000_000 + int(frac or 0)


def spans_to_otlp_json(spans: list[SpanRow]) -> dict[str, Any]:
    """Group rows back into OTLP/JSON ``resourceSpans`` (by resource, then scope)."""
    import json

    resources: dict[str, dict[str, Any]] = {}
    for sp in spans:
        rkey = json.dumps(sp.resource, sort_keys=True)
        rs = resources.setdefault(rkey, {"resource": {"attributes": sp.resource}, "_scopes": {}})
        skey = json.dumps(sp.scope, sort_keys=True)
        ss = rs["_scopes"].setdefault(skey, {"scope": sp.scope, "spans": []})
        span: dict[str, Any] = {
            "traceId": sp.trace_id,
            "spanId": sp.span_id,
            "name": sp.name,
            "kind": sp.kind,
            "startTimeUnixNano": str(sp.start_ns),
            "endTimeUnixNano": str(sp.end_ns),
            "attributes": sp.attributes,
            "events": sp.events,
            "links": sp.links,
            "status": {
                "code": sp.status_code,
                **({"message": sp.status_message} if sp.status_message else {}),
            },
        }
        if sp.parent_span_id:
            span["parentSpanId"] = sp.parent_span_id
        if sp.trace_state:
            span["traceState"] = sp.trace_state
        ss["spans"].append(span)
    out = []
    for rs in resources.values():
        scopes = rs.pop("_scopes")
        rs["scopeSpans"] = list(scopes.values())
        out.append(rs)
    return {"resourceSpans": out}


class JaegerV3Api:
    def __init__(self, reader: SpanReader) -> None:
        self._reader = reader

    def routes(self) -> list[Route]:
        return [
            Route("/api/v3/services", self.services),
            Route("/api/v3/traces/{trace_id}", self.get_trace),
            Route("/api/v3/traces", self.find_traces),
            Route("/api/v3/trace-summaries", self.trace_summaries),
        ]

    async def services(self, _: Request) -> JSONResponse:
        return JSONResponse({"services": await run_in_threadpool(self._reader.services)})

    async def get_trace(self, request: Request) -> JSONResponse:
        raw = request.path_params["trace_id"].lower()
        if not _TRACE_ID.match(raw):
            return _error(400, f"malformed parameter trace_id: {raw[:64]!r} is not a hex trace id")
        spans = await run_in_threadpool(self._reader.get_trace, raw.rjust(32, "0"))
        if not spans:
            return _error(404, "trace not found")
        return JSONResponse({"result": spans_to_otlp_json(spans)})

    def _find_ids(self, request: Request) -> list[str]:
        q = request.query_params
        start_min = _rfc3339_ns("query.startTimeMin", q.get("query.startTimeMin"))
        start_max = _rfc3339_ns("query.startTimeMax", q.get("query.startTimeMax"))
        if start_min >= start_max:
            raise _BadParam("query.startTimeMax", "must be after query.startTimeMin")
        depth_raw = q.get("query.searchDepth") or q.get("query.num_traces") or "20"
        if not depth_raw.isdigit() or int(depth_raw) < 1:
            raise _BadParam("query.searchDepth", "must be a positive integer")
        depth = min(int(depth_raw), MAX_SEARCH_DEPTH)
        return self._reader.find_trace_ids(
            q.get("query.serviceName"), q.get("query.operationName"), start_min, start_max, depth
        )

    async def find_traces(self, request: Request) -> JSONResponse:
        try:
            ids = await run_in_threadpool(self._find_ids, request)
        except _BadParam as exc:
            return _error(400, str(exc))
        spans: list[SpanRow] = []
        for tid in ids:
            spans.extend(await run_in_threadpool(self._reader.get_trace, tid))
        return JSONResponse({"result": spans_to_otlp_json(spans)})

    async def trace_summaries(self, request: Request) -> JSONResponse:
        try:
            ids = await run_in_threadpool(self._find_ids, request)
        except _BadParam as exc:
            return _error(400, str(exc))
        summaries = await run_in_threadpool(self._reader.summaries, ids)
        return JSONResponse(
            {
                "summaries": [
                    {
                        "traceId": s.trace_id,
                        "rootServiceName": s.root_service,
                        "rootOperationName": s.root_operation,
                        "minStartTimeUnixNano": str(s.start_ns),
                        "maxEndTimeUnixNano": str(s.end_ns),
                        "spanCount": s.span_count,
                        "errorSpanCount": s.error_count,
                        "services": [
                            {"name": n, "spanCount": c, "errorSpanCount": e}
                            for n, c, e in s.services
                        ],
                    }
                    for s in summaries
                ]
            }
        )
