"""What the three services' apps share: the ops/API split, error answers, relaying answers.

Each service is built like the single demo (demo_app/main.py): an uninstrumented outer app
with ``/healthz`` and ``/admin/faults`` (a fault's name must never reach a span) and the
instrumented API app mounted inside it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from demo_app.exceptions import Forwarded, Unavailable
from demo_app.main import errors_as_json, flush_telemetry
from demo_app.micro.settings import ServiceSettings
from demo_app.micro.upstream import UpstreamError
from instrumentation import InstrumentationSettings, instrument

__all__ = ["answer_json", "instrument_service", "ops_app", "relay", "upstream_errors_as_json"]


async def _upstream_error(_: Request, exc: Exception) -> JSONResponse:
    status = exc.status if isinstance(exc, UpstreamError) else 503
    retry_after = exc.retry_after_s if isinstance(exc, UpstreamError) else 1.0
    headers = {"Retry-After": str(max(1, round(retry_after)))} if status == 503 else {}
    return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)


def upstream_errors_as_json(app: FastAPI) -> None:
    """The demo's error answers, plus 503/504 for calls that got no answer upstream."""
    errors_as_json(app)
    app.add_exception_handler(UpstreamError, _upstream_error)


def instrument_service(api: FastAPI, me: ServiceSettings) -> None:
    """``instrument(api)`` as ``me``: its service.name, and ``service.instance.id``
    ``<short>-<index>`` unless OTEL_RESOURCE_ATTRIBUTES names the instance already."""
    attrs = dict(InstrumentationSettings.from_env().resource_attributes)
    attrs.setdefault("service.instance.id", me.instance_id)
    instrument(api, service_name=me.name, resource_attributes=attrs)


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return json.dumps(body)[:200]


def answer_json(response: httpx.Response, service: str) -> Any:
    """The upstream's JSON body when it succeeded; its error passed on when it did not.

    4xx keep their status (the client asked for something wrong); a 503 stays a 503 with
    Retry-After; any other 5xx becomes 502: the upstream failed, not this service.
    """
    status = response.status_code
    if status < 400:
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError):
            raise Forwarded(502, f"{service} answered {status} without JSON") from None
    reason = _reason(response)
    if status == 503:
        raise Unavailable(f"{service}: {reason}", _retry_after(response))
    if status >= 500:
        raise Forwarded(504 if status == 504 else 502, f"{service} failed: {reason}")
    raise Forwarded(status, reason)


def relay(response: httpx.Response, service: str) -> Response:
    """Pass a successful answer on as it came (no re-serialisation), an error as above."""
    if response.status_code >= 400:
        answer_json(response, service)  # raises
    return Response(
        response.content,
        status_code=response.status_code,
        media_type=response.headers.get("content-type", "application/json"),
    )


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(1.0, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def ops_app(
    api: FastAPI,
    *,
    state: Any,
    opened: Callable[[], Awaitable[None]],
    closed: Callable[[], Awaitable[None]],
    health: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
    admin: bool = True,
) -> FastAPI:
    """The outer app: lifespan, ``/healthz`` (status and body from ``health``) and, with
    ``admin``, the fault switches; ``api`` mounted at the root."""
    from demo_app import admin as admin_routes

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await opened()
        try:
            yield
        finally:
            await closed()
            await flush_telemetry()

    ops = FastAPI(
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    ops.state.demo = state
    if admin:
        ops.include_router(admin_routes.router)
    upstream_errors_as_json(ops)

    @ops.get("/healthz")
    async def healthz() -> JSONResponse:
        status, body = await health()
        return JSONResponse(body, status_code=status)

    ops.mount("", api)
    return ops
