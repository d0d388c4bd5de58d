"""Zipkin v2 JSON spans → an OTLP ``ExportTraceServiceRequest`` (then flattened like OTLP).

Mapping (as the OpenTelemetry Collector's zipkin receiver does): ``localEndpoint.serviceName``
→ resource ``service.name``; ``kind`` → SpanKind; µs → ns; 64-bit trace ids left-padded to
128; ``parentId == id`` → a root; tags → string attributes (known numeric/boolean keys get
their OTel type back, since the Zipkin exporters stringify them); annotations → events;
``otel.status_code``/``error`` tags → status. Shared client/server spans (same id,
``shared: true``) stay two spans.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

__all__ = ["ZipkinError", "zipkin_to_otlp"]

_KINDS = {
    "CLIENT": Span.SPAN_KIND_CLIENT,
    "SERVER": Span.SPAN_KIND_SERVER,
    "PRODUCER": Span.SPAN_KIND_PRODUCER,
    "CONSUMER": Span.SPAN_KIND_CONSUMER,
}
_INT_TAGS = {"http.response.status_code", "http.status_code", "server.port", "net.peer.port"}
_BOOL_TAGS = {"app.cache.hit"}
_DOUBLE_TAGS = {"app.pool.wait_ms"}
_HEX = set("0123456789abcdefABCDEF")


class ZipkinError(ValueError):
    """The body is not a valid Zipkin v2 span list; answered 400."""


def _hex_id(value: Any, what: str, index: int, widths: tuple[int, ...]) -> bytes:
    if not isinstance(value, str) or len(value) not in widths or not set(value) <= _HEX:
        raise ZipkinError(
            f"span {index}: {what} must be {' or '.join(map(str, widths))} hex characters"
        )
    raw = bytes.fromhex(value)
    return raw.rjust(max(widths) // 2, b"\0")


def _tag(key: str, value: str) -> KeyValue:
    if key in _INT_TAGS:
        try:
            return KeyValue(key=key, value=AnyValue(int_value=int(value)))
        except ValueError:
            pass
    elif key in _BOOL_TAGS and value in ("true", "false"):
        return KeyValue(key=key, value=AnyValue(bool_value=value == "true"))
    elif key in _DOUBLE_TAGS:
        try:
            return KeyValue(key=key, value=AnyValue(double_value=float(value)))
        except ValueError:
            pass
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _endpoint_attrs(ep: Any, prefix: str) -> list[KeyValue]:
    out: list[KeyValue] = []
    if not isinstance(ep, dict):
        return out
    if prefix == "peer" and isinstance(ep.get("serviceName"), str):
        out.append(KeyValue(key="peer.service", value=AnyValue(string_value=ep["serviceName"])))
    for field in ("ipv4", "ipv6"):
        if isinstance(ep.get(field), str):
            key = "network.peer.address" if prefix == "peer" else "network.local.address"
            out.append(KeyValue(key=key, value=AnyValue(string_value=ep[field])))
            break
    if isinstance(ep.get("port"), int):
        key = "network.peer.port" if prefix == "peer" else "network.local.port"
        out.append(KeyValue(key=key, value=AnyValue(int_value=ep["port"])))
    return out


def _span(raw: Any, index: int) -> tuple[str, Span]:
    if not isinstance(raw, dict):
        raise ZipkinError(f"span {index}: not a JSON object")
    trace_id = _hex_id(raw.get("traceId"), "traceId", index, (16, 32))
    span_id = _hex_id(raw.get("id"), "id", index, (16,))
    parent = raw.get("parentId")
    parent_id = _hex_id(parent, "parentId", index, (16,)) if parent is not None else b""
    if parent_id == span_id:
        parent_id = b""
    ts, dur = raw.get("timestamp", 0), raw.get("duration", 0)
    if not isinstance(ts, int) or not isinstance(dur, int) or ts < 0 or dur < 0:
        raise ZipkinError(f"span {index}: timestamp and duration are non-negative integers (µs)")
    name = raw.get("name") or ""
    if not isinstance(name, str):
        raise ZipkinError(f"span {index}: name must be a string")
    kind = raw.get("kind")
    if kind is not None and kind not in _KINDS:
        raise ZipkinError(f"span {index}: kind must be one of {', '.join(_KINDS)}")
    span = Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_id,
        name=name,
        kind=_KINDS.get(kind or "", Span.SPAN_KIND_INTERNAL),
        start_time_unix_nano=ts * 1000,
        end_time_unix_nano=(ts + dur) * 1000,
    )
    tags = raw.get("tags") or {}
    if not isinstance(tags, dict):
        raise ZipkinError(f"span {index}: tags must be an object of strings")
    status_code = tags.get("otel.status_code")
    for key, value in tags.items():
        if not isinstance(value, str):
            raise ZipkinError(f"span {index}: tag {key!r} must be a string")
        if key in ("otel.status_code", "otel.status_description"):
            continue
        span.attributes.append(_tag(key, value))
    if status_code == "ERROR" or (status_code is None and "error" in tags):
        span.status.CopyFrom(
            Status(
                code=Status.STATUS_CODE_ERROR,
                message=tags.get("otel.status_description") or tags.get("error", ""),
            )
        )
    elif status_code == "OK":
        span.status.code = Status.STATUS_CODE_OK
    if raw.get("shared") is True:
        span.attributes.append(KeyValue(key="zipkin.shared", value=AnyValue(bool_value=True)))
    span.attributes.extend(_endpoint_attrs(raw.get("remoteEndpoint"), "peer"))
    local = raw.get("localEndpoint")
    span.attributes.extend(_endpoint_attrs(local, "local"))
    for ann in raw.get("annotations") or []:
        if not isinstance(ann, dict) or not isinstance(ann.get("timestamp"), int):
            raise ZipkinError(f"span {index}: annotations need an integer timestamp")
        span.events.add(time_unix_nano=ann["timestamp"] * 1000, name=str(ann.get("value", "")))
    service = ""
    if isinstance(local, dict) and isinstance(local.get("serviceName"), str):
        service = local["serviceName"]
    return service or "unknown_service", span


def zipkin_to_otlp(doc: Any) -> ExportTraceServiceRequest:
    """A decoded ``POST /api/v2/spans`` body → one OTLP request, a resource per service."""
    if not isinstance(doc, list):
        raise ZipkinError("the body must be a JSON array of spans")
    req = ExportTraceServiceRequest()
    by_service: dict[str, Any] = {}
    for i, raw in enumerate(doc):
        service, span = _span(raw, i)
        ss = by_service.get(service)
        if ss is None:
            rs = req.resource_spans.add()
            rs.resource.attributes.append(
                KeyValue(key="service.name", value=AnyValue(string_value=service))
            )
            ss = by_service[service] = rs.scope_spans.add()
            ss.scope.name = "zipkin"
        ss.spans.append(span)
    return req
