"""``create_app``: the demo service — an instrumented API app inside a thin operations app.

    outer app (not instrumented)   /healthz, /admin/faults…   lifespan opens/closes the service
      └── mounted at "" → API app  /items…, /search, /orders…  instrument(app): spans, /metrics

The operations routes stay outside the instrumentation so switching a fault leaves no span
(its path would name the fault) and health checks add no noise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from demo_app import admin, routes
from demo_app.exceptions import DemoError, ShardUnavailable, Unavailable
from demo_app.service import DemoService
from demo_app.settings import DemoSettings
from instrumentation import current, instrument

__all__ = ["create_app", "errors_as_json", "flush_telemetry"]

_log = logging.getLogger("demo_app")


async def _demo_error(_: Request, exc: Exception) -> JSONResponse:
    status = exc.status if isinstance(exc, DemoError) else 500
    headers = {}
    if isinstance(exc, ShardUnavailable):
        _log.warning("%s", exc)
        headers["Retry-After"] = "1"
    elif isinstance(exc, Unavailable):
        headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
    return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "path", "query")]
    return ".".join(parts) or "body"


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    reasons = "; ".join(f"{_where(tuple(e.get('loc', ())))}: {e.get('msg')}" for e in errors)
    return JSONResponse(
        {"error": reasons or "invalid request", "detail": jsonable_encoder(errors)},
        status_code=422,
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    headers = getattr(exc, "headers", None)
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


def errors_as_json(app: FastAPI) -> None:
    """Every error the demo raises on purpose, and FastAPI's own, as ``{"error": reason}``."""
    app.add_exception_handler(DemoError, _demo_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http_error)


async def flush_telemetry() -> None:
    """Send the queued spans and logs (bounded by NARROWS_SHUTDOWN_TIMEOUT) as the outer
    app's lifespan ends: the instrumented API app is mounted, and a mount gets no lifespan
    of its own, while uvicorn ends the process by re-raising SIGTERM (no atexit hook)."""
    telemetry = current()
    if telemetry is not None:
        await asyncio.to_thread(telemetry.flush)


def create_app(settings: DemoSettings | None = None) -> FastAPI:
    """Build the app (no I/O until the lifespan starts); ConfigError on impossible settings."""
    settings = settings or DemoSettings()
    service = DemoService.build(settings, routes.ROUTES)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.open()
        try:
            yield
        finally:
            await service.close()
            await flush_telemetry()

    api = FastAPI(title="Narrows demo")
    api.state.demo = service
    api.include_router(routes.router)
    errors_as_json(api)
    instrument(api, service_name=settings.service_name)

    ops = FastAPI(
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # FastAPI's own OpenTelemetry support is on whenever a global provider exists.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    ops.state.demo = service
    ops.include_router(admin.router)
    errors_as_json(ops)

    @ops.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "shards": len(service.shards),
            "backend": settings.backend,
            "cache": "redis" if settings.cache.startswith(("redis", "unix")) else settings.cache,
        }

    ops.mount("", api)
    return ops
