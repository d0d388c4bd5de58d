"""Receives OTLP/HTTP traces and hands valid span batches to the writer."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collector.store.schema import SPAN_COLUMNS
from collector.store.writer import QueueFull, SpanWriter

__all__ = ["OtlpReceiver", "flatten_traces"]

PROTOBUF = "application/x-protobuf"


def _kv_json(items: Any) -> str:
    return json.dumps([MessageToDict(kv) for kv in items], separators=(",", ":"))


def flatten_traces(req: ExportTraceServiceRequest, received_ns: int) -> dict[str, list[object]]:
    """One list per column of the spans table, in SPAN_COLUMNS order."""
    cols: dict[str, list[object]] = {c: [] for c in SPAN_COLUMNS}
    for rs in req.resource_spans:
        service = "unknown_service"
        for kv in rs.resource.attributes:
            if kv.key == "service.name" and kv.value.HasField("string_value"):
                service = kv.value.string_value
        resource = _kv_json(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope = json.dumps(
                MessageToDict(ss.scope) if ss.HasField("scope") else {}, separators=(",", ":")
            )
            for sp in ss.spans:
                cols["trace_id"].append(sp.trace_id.hex())
                cols["span_id"].append(sp.span_id.hex())
                cols["parent_span_id"].append(sp.parent_span_id.hex())
                cols["service_name"].append(service)
                cols["name"].append(sp.name)
                cols["kind"].append(int(sp.kind))
                cols["start_ns"].append(int(sp.start_time_unix_nano))
                cols["end_ns"].append(int(sp.end_time_unix_nano))
                cols["duration_ns"].append(
                    int(sp.end_time_unix_nano) - int(sp.start_time_unix_nano)
                )
                cols["status_code"].append(int(sp.status.code))
                cols["status_message"].append(sp.status.message)
                cols["attributes"].append(_kv_json(sp.attributes))
                cols["resource"].append(resource)
                cols["scope"].append(scope)
                cols["events"].append(
                    json.dumps([MessageToDict(e) for e in sp.events], separators=(",", ":"))
                )
                cols["links"].append(
                    json.dumps([MessageToDict(lk) for lk in sp.links], separators=(",", ":"))
                )
                cols["trace_state"].append(sp.trace_state)
                cols["received_ns"].append(received_ns)
    return cols


class OtlpReceiver:
    """``POST /v1/traces`` (protobuf)."""

    def __init__(self, writer: SpanWriter) -> None:
        self._writer = writer

    def routes(self) -> list[Route]:
        return [Route("/v1/traces", self.traces, methods=["POST"])]

    async def traces(self, request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != PROTOBUF:
            return JSONResponse(
                {"code": 3, "message": f"unsupported content type {ctype!r}"}, status_code=415
            )
        body = await request.body()
        req = ExportTraceServiceRequest()
        try:
            req.ParseFromString(body)
        except DecodeError as exc:
            return JSONResponse(
                {"code": 3, "message": f"malformed protobuf: {exc}"}, status_code=400
            )
        cols = flatten_traces(req, time.time_ns())
        if cols["trace_id"]:
            try:
                fut = self._writer.submit(cols)
            except QueueFull:
                return Response(status_code=503, headers={"Retry-After": "1"})
            await asyncio.wrap_future(fut)
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type=PROTOBUF)
