"""Zipkin v2 receiver: ``POST /api/v2/spans`` (JSON) → 202, on its own port (9411)."""

from __future__ import annotations

import json
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.ingest import Kind, MalformedBody
from collector.pipeline import Overloaded, Pipeline, StorageUnavailable
from collector.receivers.body import BodyError, read_body

__all__ = ["ZipkinReceiver"]

_STORAGE = "the collector cannot store data now (disk full?); retry later"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps({"error": message}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


class ZipkinReceiver:
    def __init__(self, pipeline: Pipeline, max_body: int) -> None:
        self._pipeline = pipeline
        self._max_body = max_body

    def routes(self) -> list[Route]:
        return [Route("/api/v2/spans", self.spans, methods=["POST", "GET", "PUT", "DELETE"])]

    async def spans(self, request: Request) -> Response:
        if request.method != "POST":
            return _error(405, "use POST", {"Allow": "POST"})
        ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if ctype.lower() not in ("application/json", ""):
            return _error(415, f"unsupported Content-Type {ctype[:60]!r}; use application/json")
        gate = self._pipeline.gate
        if gate.used >= gate.capacity:
            self._pipeline.metrics.enqueue_failed("traces", 1)
            return _error(503, "the collector is overloaded; retry later", {"Retry-After": "1"})
        if self._pipeline.health.refusing():
            self._pipeline.metrics.refused("traces", "zipkin", "storage_unavailable", 1)
            return _error(503, _STORAGE, {"Retry-After": "5"})
        received_ns = time.time_ns()
        try:
            body, reserved = await read_body(request, self._max_body, gate)
        except BodyError as exc:
            headers = {"Retry-After": "1"} if exc.status == 503 else None
            return _error(exc.status, str(exc), headers)
        try:
            await self._pipeline.accept(Kind.ZIPKIN_JSON, body, received_ns, reserved, "zipkin")
        except MalformedBody as exc:
            return _error(400, str(exc))
        except Overloaded:
            return _error(503, "the collector is overloaded; retry later", {"Retry-After": "1"})
        except StorageUnavailable:
            return _error(503, _STORAGE, {"Retry-After": "5"})
        return Response(status_code=202)
