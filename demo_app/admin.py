"""``/admin/faults``: list, set and clear the fault switches at runtime.

These routes live on the outer, uninstrumented app (see main.py): a request path such as
``/admin/faults/slow_shard`` would otherwise land in a span's ``url.path`` and give the
answer away. The one trace an operator's change leaves is the "fault changed" log line.

The app's ``state.demo`` only needs a ``faults`` attribute; an app may set
``state.fault_hook`` (an async callable) to act on every change — the micro topology's
gateway forwards the change to the processes that simulate it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from fastapi import APIRouter, Request

from demo_app.exceptions import InvalidFaultParams
from demo_app.faults import Faults, log_change

__all__ = ["router"]

router = APIRouter(prefix="/admin/faults")


class _HasFaults(Protocol):
    faults: Faults


def _service(request: Request) -> _HasFaults:
    service: _HasFaults = request.app.state.demo
    return service


async def _changed(request: Request) -> None:
    hook: Callable[[], Awaitable[None]] | None = getattr(request.app.state, "fault_hook", None)
    if hook is not None:
        await hook()


def _listing(service: _HasFaults) -> dict[str, Any]:
    return {
        "faults": service.faults.describe(),
        "shards": service.faults.shards,
        "seed": service.faults.seed,
    }


@router.get("")
async def list_faults(request: Request) -> dict[str, Any]:
    return _listing(_service(request))


@router.get("/{name}")
async def show_fault(name: str, request: Request) -> dict[str, Any]:
    faults = _service(request).faults
    faults.spec(name)  # UnknownFault (404) names the known ones
    return faults.describe(name)[0]


async def _json_object(request: Request) -> dict[str, object]:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidFaultParams(f"body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidFaultParams('body must be a JSON object of parameters, e.g. {"shard": 2}')
    return value


@router.put("/{name}")
async def set_fault(name: str, request: Request) -> dict[str, Any]:
    faults = _service(request).faults
    raw = await _json_object(request)
    old = faults.params(name)
    new = faults.set(name, raw)
    log_change(name, old, new)
    await _changed(request)
    return faults.describe(name)[0]


@router.delete("/{name}")
async def clear_fault(name: str, request: Request) -> dict[str, Any]:
    faults = _service(request).faults
    old = faults.clear(name)
    if old is not None:
        log_change(name, old, None)
        await _changed(request)
    return faults.describe(name)[0]


@router.delete("")
async def clear_all(request: Request) -> dict[str, Any]:
    service = _service(request)
    cleared = service.faults.clear_all()
    for name, old in cleared.items():
        log_change(name, old, None)
    if cleared:
        await _changed(request)
    return _listing(service)
