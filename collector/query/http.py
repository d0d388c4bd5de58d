"""JSON answers and the error shape every query route shares (Jaeger's)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import duckdb
from starlette.requests import Request
from starlette.responses import Response

from collector.query.params import BadParam
from collector.query.runner import QueryTimeout

__all__ = ["error", "guarded", "ok"]

_log = logging.getLogger(__name__)


def ok(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), allow_nan=False),
        status_code=status,
        media_type="application/json",
    )


def error(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """``{"error": {"httpCode": ..., "message": ...}}`` as the Jaeger API v3 answers."""
    return Response(
        json.dumps({"error": {"httpCode": code, "message": message}}),
        status_code=code,
        media_type="application/json",
        headers=headers,
    )


def guarded(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """400 for a bad parameter, 503 for a query past its deadline or while the store is
    reopened, 500 (logged) otherwise."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except BadParam as exc:
            return error(400, str(exc))
        except QueryTimeout as exc:
            return error(503, str(exc), {"Retry-After": "5"})
        except duckdb.InterruptException:
            return error(503, "query interrupted", {"Retry-After": "5"})
        except (duckdb.FatalException, duckdb.ConnectionException) as exc:
            # DuckDB invalidated the store (a checkpoint failed on a full disk) and the
            # writer is reopening it: a passing state, not a bug.
            _log.warning("query %s: the store is being reopened (%s)", request.url.path, exc)
            return error(503, "the store is being reopened; retry shortly", {"Retry-After": "5"})
        except Exception:
            _log.exception("query %s failed", request.url.path)
            return error(500, "internal error while answering the query")

    return wrapped
