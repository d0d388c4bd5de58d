"""Settings read once from the standard ``OTEL_*`` (and our ``NARROWS_*``) variables.

Spec rules: an empty value means unset, a bad value warns and falls back to the default.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["InstrumentationSettings"]

_log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "http://localhost:4318"


def _get(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _parse_kv(raw: str | None, name: str) -> dict[str, str]:
    """``k=v,k2=v2`` with URL-decoded values, as OTEL_RESOURCE_ATTRIBUTES/HEADERS use."""
    from urllib.parse import unquote

    out: dict[str, str] = {}
    if not raw:
        return out
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            _log.warning("ignoring malformed %s entry %r (expected key=value)", name, item)
            continue
        out[key.strip()] = unquote(value.strip())
    return out


@dataclass(frozen=True)
class InstrumentationSettings:
    """Everything ``instrument``/``configure`` need, resolved from the environment."""

    service_name: str = "unknown_service"
    resource_attributes: dict[str, str] = field(default_factory=dict)
    otlp_endpoint: str = DEFAULT_ENDPOINT
    otlp_protocol: str = "http/protobuf"
    otlp_headers: dict[str, str] = field(default_factory=dict)
    traces_exporter: str = "otlp"
    sdk_disabled: bool = False

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] = os.environ, **overrides: Any
    ) -> InstrumentationSettings:
        """Read the variables once; keyword overrides win over the environment."""
        resource = _parse_kv(_get(environ, "OTEL_RESOURCE_ATTRIBUTES"), "OTEL_RESOURCE_ATTRIBUTES")
        service = _get(environ, "OTEL_SERVICE_NAME") or resource.get("service.name")
        protocol = _get(environ, "OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
        if protocol not in ("http/protobuf", "http/json", "grpc"):
            _log.warning(
                "OTEL_EXPORTER_OTLP_PROTOCOL=%r is not supported; using http/protobuf", protocol
            )
            protocol = "http/protobuf"
        exporter = (_get(environ, "OTEL_TRACES_EXPORTER") or "otlp").lower()
        if exporter not in ("otlp", "zipkin_json", "console", "none"):
            _log.warning("OTEL_TRACES_EXPORTER=%r is not supported; using otlp", exporter)
            exporter = "otlp"
        settings = cls(
            service_name=service or "unknown_service",
            resource_attributes=resource,
            otlp_endpoint=(_get(environ, "OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT),
            otlp_protocol=protocol,
            otlp_headers=_parse_kv(
                _get(environ, "OTEL_EXPORTER_OTLP_HEADERS"), "OTEL_EXPORTER_OTLP_HEADERS"
            ),
            traces_exporter=exporter,
            sdk_disabled=(_get(environ, "OTEL_SDK_DISABLED") or "").lower() == "true",
        )
        return replace(settings, **overrides) if overrides else settings
