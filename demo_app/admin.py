"""``/admin/faults``: list, set and clear the fault switches at runtime.

These routes live on the outer, uninstrumented app (see main.py): a request path such as
``/admin/faults/slow_shard`` would otherwise land in a span's ``url.path`` and give the
answer away. The one trace an operator's change leaves is the "fault changed" log line.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request

from demo_app.exceptions import InvalidFaultParams
from demo_app.faults import log_change
from demo_app.service import DemoService

__all__ = ["router"]

router = APIRouter(prefix="/admin/faults")


def _service(request: Request) -> DemoService:
    service: DemoService = request.app.state.demo
    return service


def _listing(service: DemoService) -> dict[str, Any]:
    return {
        "faults": service.faults.describe(),
        "shards": len(service.shards),
        "seed": service.settings.fault_seed,
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
    return faults.describe(name)[0]


@router.delete("/{name}")
async def clear_fault(name: str, request: Request) -> dict[str, Any]:
    faults = _service(request).faults
    old = faults.clear(name)
    if old is not None:
        log_change(name, old, None)
    return faults.describe(name)[0]


@router.delete("")
async def clear_all(request: Request) -> dict[str, Any]:
    service = _service(request)
    for name, old in service.faults.clear_all().items():
        log_change(name, old, None)
    return _listing(service)
