"""Resources, scopes and the attributes promoted to columns, shared by every signal."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from collector.flatten.values import AttrColumns

__all__ = [
    "MAX_NS",
    "PROMOTED",
    "PROMOTED_BY_COLUMN",
    "Rejections",
    "ResourceScopeRows",
    "service_of",
    "stable_id",
]

MAX_NS = 2**63 - 1
"""Times are stored as signed 64-bit nanoseconds; OTLP's are unsigned: later ones are refused."""

#: Span attributes stored as their own typed column: key → (column, protobuf oneof, Arrow type).
#: Only a value of the expected type is promoted; any other stays in the ``attributes`` list,
#: so nothing is lost or re-typed (docs/telemetry.md names these keys).
PROMOTED: dict[str, tuple[str, str, pa.DataType]] = {
    "http.route": ("http_route", "string_value", pa.string()),
    "http.request.method": ("http_method", "string_value", pa.string()),
    "http.response.status_code": ("http_status_code", "int_value", pa.int32()),
    "url.path": ("url_path", "string_value", pa.string()),
    "error.type": ("error_type", "string_value", pa.string()),
    "server.address": ("server_address", "string_value", pa.string()),
    "app.shard.id": ("app_shard_id", "string_value", pa.string()),
    "app.cache.hit": ("app_cache_hit", "bool_value", pa.bool_()),
    "app.cache.name": ("app_cache_name", "string_value", pa.string()),
    "app.pool.wait_ms": ("app_pool_wait_ms", "double_value", pa.float64()),
    "db.system.name": ("db_system", "string_value", pa.string()),
    "db.namespace": ("db_namespace", "string_value", pa.string()),
    "db.operation.name": ("db_operation", "string_value", pa.string()),
    "db.collection.name": ("db_collection", "string_value", pa.string()),
}
PROMOTED_BY_COLUMN: dict[str, tuple[str, str]] = {
    col: (key, which) for key, (col, which, _) in PROMOTED.items()
}


def stable_id(data: bytes) -> int:
    """A 63-bit id for a serialized resource or scope (same bytes → same id, across restarts)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") >> 1


@dataclass
class Rejections:
    """Items refused at the edge, counted for ``partial_success``."""

    count: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str, n: int = 1) -> None:
        self.count += n
        self.reasons[reason] = self.reasons.get(reason, 0) + n

    def message(self) -> str:
        return "; ".join(f"{n} {reason}" for reason, n in sorted(self.reasons.items()))


class ResourceScopeRows:
    """Distinct resources and scopes met in one request, as rows for their tables."""

    def __init__(self) -> None:
        self._resources: dict[int, tuple[str, Any, int]] = {}
        self._scopes: dict[int, tuple[str, str, Any, int]] = {}

    def resource(self, resource: Any, service: str) -> int:
        rid = stable_id(resource.SerializeToString(deterministic=True))
        if rid not in self._resources:
            self._resources[rid] = (service, resource.attributes, resource.dropped_attributes_count)
        return rid

    def scope(self, scope: Any) -> int:
        sid = stable_id(scope.SerializeToString(deterministic=True))
        if sid not in self._scopes:
            self._scopes[sid] = (
                scope.name,
                scope.version,
                scope.attributes,
                scope.dropped_attributes_count,
            )
        return sid

    def resources_table(self) -> pa.Table:
        attrs = AttrColumns()
        for _, kvs, _ in self._resources.values():
            attrs.add_all(kvs)
        return pa.table(
            {
                "resource_id": pa.array(list(self._resources), pa.uint64()),
                "service_name": pa.array([v[0] for v in self._resources.values()], pa.string()),
                "attributes": attrs.to_arrow(),
                "dropped_attributes": pa.array(
                    [v[2] for v in self._resources.values()], pa.uint32()
                ),
            }
        )

    def scopes_table(self) -> pa.Table:
        attrs = AttrColumns()
        for _, _, kvs, _ in self._scopes.values():
            attrs.add_all(kvs)
        return pa.table(
            {
                "scope_id": pa.array(list(self._scopes), pa.uint64()),
                "name": pa.array([v[0] for v in self._scopes.values()], pa.string()),
                "version": pa.array([v[1] for v in self._scopes.values()], pa.string()),
                "attributes": attrs.to_arrow(),
                "dropped_attributes": pa.array([v[3] for v in self._scopes.values()], pa.uint32()),
            }
        )


def service_of(resource: Any) -> str:
    """``service.name`` of a resource, ``unknown_service`` as the SDKs default it."""
    for kv in resource.attributes:
        if kv.key == "service.name" and kv.value.WhichOneof("value") == "string_value":
            return str(kv.value.string_value)
    return "unknown_service"
