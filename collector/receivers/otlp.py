"""OTLP/HTTP receiver: ``POST /v1/traces``, ``/v1/metrics``, ``/v1/logs``.

Protobuf (``application/x-protobuf``) and JSON (``application/json``) on the same port,
answered in the request's content type: 200 with an empty ``Export*ServiceResponse``;
200 with ``partial_success`` when some items were refused; 400 with a ``google.rpc.Status``
for a malformed body or an unsupported encoding; 405, 413 (after decompression), 415;
503 with ``Retry-After`` when the memory bound is reached.
"""

from __future__ import annotations

import json
import time

from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.ingest import Kind, MalformedBody
from collector.pipeline import Accepted, Overloaded, Pipeline, StorageUnavailable
from collector.receivers.body import BodyError, read_body

__all__ = ["OtlpReceiver", "status_response"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_STORAGE = "the collector cannot store data now (disk full?); retry later"
_GRPC_CODE = {400: 3, 401: 16, 404: 5, 405: 12, 413: 8, 415: 3, 500: 13, 503: 14}
_SIGNALS = {
    "traces": (Kind.OTLP_TRACES_PROTO, Kind.OTLP_TRACES_JSON, "spans"),
    "metrics": (Kind.OTLP_METRICS_PROTO, Kind.OTLP_METRICS_JSON, "data_points"),
    "logs": (Kind.OTLP_LOGS_PROTO, Kind.OTLP_LOGS_JSON, "log_records"),
}


def status_response(
    http_status: int, message: str, as_json: bool = True, headers: dict[str, str] | None = None
) -> Response:
    """A ``google.rpc.Status`` body, as the OTLP/HTTP spec asks for every error."""
    code = _GRPC_CODE.get(http_status, 2)
    if as_json:
        return Response(
            json.dumps({"code": code, "message": message}),
            status_code=http_status,
            media_type=JSON,
            headers=headers,
        )
    return Response(
        Status(code=code, message=message).SerializeToString(),
        status_code=http_status,
        media_type=PROTOBUF,
        headers=headers,
    )


def _success(signal: str, result: Accepted, as_json: bool) -> Response:
    if signal == "traces":
        msg: object = ExportTraceServiceResponse()
        partial: object = ExportTracePartialSuccess(
            rejected_spans=result.rejected, error_message=result.message
        )
        field, count_key = "partial_success", "rejectedSpans"
    elif signal == "metrics":
        msg = ExportMetricsServiceResponse()
        partial = ExportMetricsPartialSuccess(
            rejected_data_points=result.rejected, error_message=result.message
        )
        field, count_key = "partial_success", "rejectedDataPoints"
    else:
        msg = ExportLogsServiceResponse()
        partial = ExportLogsPartialSuccess(
            rejected_log_records=result.rejected, error_message=result.message
        )
        field, count_key = "partial_success", "rejectedLogRecords"
    if as_json:
        body: dict[str, object] = {}
        if result.rejected:
            body["partialSuccess"] = {
                count_key: str(result.rejected),
                "errorMessage": result.message,
            }
        return Response(json.dumps(body), media_type=JSON)
    if result.rejected:
        getattr(msg, field).CopyFrom(partial)
    return Response(msg.SerializeToString(), media_type=PROTOBUF)  # type: ignore[attr-defined]


class OtlpReceiver:
    def __init__(self, pipeline: Pipeline, max_body: int) -> None:
        self._pipeline = pipeline
        self._max_body = max_body

    def routes(self) -> list[Route]:
        return [
            Route(
                f"/v1/{signal}",
                self._handler(signal),
                methods=["POST", "GET", "PUT", "DELETE", "PATCH"],
            )
            for signal in _SIGNALS
        ]

    def _handler(self, signal: str):  # type: ignore[no-untyped-def]
        async def handle(request: Request) -> Response:
            return await self._receive(signal, request)

        return handle

    async def _receive(self, signal: str, request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        as_json = ctype != PROTOBUF
        if request.method != "POST":
            return status_response(
                405, f"method {request.method} not allowed; use POST", as_json, {"Allow": "POST"}
            )
        if ctype not in (PROTOBUF, JSON):
            return status_response(
                415, f"unsupported Content-Type {ctype[:60]!r}; use {PROTOBUF} or {JSON}"
            )
        proto_kind, json_kind, _ = _SIGNALS[signal]
        kind = json_kind if as_json else proto_kind
        received_ns = time.time_ns()
        gate = self._pipeline.gate
        if gate.used >= gate.capacity:
            self._pipeline.metrics.enqueue_failed(signal, 1)
            return status_response(
                503, "the collector is overloaded; retry later", as_json, {"Retry-After": "1"}
            )
        if self._pipeline.health.refusing():
            self._pipeline.metrics.refused(signal, "otlp", "storage_unavailable", 1)
            return status_response(503, _STORAGE, as_json, {"Retry-After": "5"})
        try:
            body, reserved = await read_body(request, self._max_body, gate)
        except BodyError as exc:
            headers = {"Retry-After": "1"} if exc.status == 503 else None
            self._pipeline.metrics.refused(signal, "otlp", f"http_{exc.status}", 1)
            return status_response(exc.status, str(exc), as_json, headers)
        try:
            result = await self._pipeline.accept(kind, body, received_ns, reserved, "otlp")
        except MalformedBody as exc:
            return status_response(400, str(exc), as_json)
        except Overloaded:
            return status_response(
                503, "the collector is overloaded; retry later", as_json, {"Retry-After": "1"}
            )
        except StorageUnavailable:
            return status_response(503, _STORAGE, as_json, {"Retry-After": "5"})
        return _success(signal, result, as_json)
