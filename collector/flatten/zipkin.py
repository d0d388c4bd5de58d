"""Zipkin v2 JSON spans → an OTLP ``ExportTraceServiceRequest`` (then flattened like OTLP).

Mapping (as the OpenTelemetry Collector's zipkin receiver does): ``localEndpoint.serviceName``
→ resource ``service.name``; ``kind`` → SpanKind; µs → ns; 64-bit trace ids left-padded to
128; ``parentId == id`` → a root; tags → string attributes (known numeric/boolean keys get
their OTel type back, since the Zipkin exporters stringify them); annotations → events;
``otel.status_code``/``error`` tags → status. Shared client/server spans (same id,
``shared: true``) stay two spans.

The request is written as OTLP wire bytes directly rather than built as protobuf objects:
tag key/value pairs repeat across spans, so each distinct one is encoded once (a bounded
cache), and a span is a join of a few byte strings — four times faster than building
``Span`` messages, which made Zipkin ingest CPU-bound at half the OTLP rate.
"""

from __future__ import annotations

import struct
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

__all__ = ["ZipkinError", "zipkin_to_otlp"]

_FIXED64 = struct.Struct("<Q")
_TAG_CACHE_LIMIT = 100_000

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


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: ``tag`` is the encoded field key."""
    return tag + _varint(len(payload)) + payload


def _str(tag: bytes, text: str) -> bytes:
    return _ld(tag, text.encode()) if text else b""


# Field keys: (number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited).
_SPAN_TRACE_ID, _SPAN_ID, _SPAN_PARENT, _SPAN_NAME = b"\x0a", b"\x12", b"\x22", b"\x2a"
_SPAN_KIND, _SPAN_START, _SPAN_END, _SPAN_ATTR = b"\x30", b"\x39", b"\x41", b"\x4a"
_SPAN_EVENT, _SPAN_STATUS = b"\x5a", b"\x7a"
_EVENT_TIME, _EVENT_NAME = b"\x09", b"\x12"
_STATUS_MESSAGE, _STATUS_CODE = b"\x12", b"\x18"


class _Tags:
    """Encoded ``KeyValue`` bytes per (key, value), bounded because values can be unique."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], bytes] = {}

    def get(self, key: str, value: str) -> bytes:
        hit = self._cache.get((key, value))
        if hit is None:
            if len(self._cache) >= _TAG_CACHE_LIMIT:
                self._cache.clear()
            hit = self._cache[(key, value)] = _ld(_SPAN_ATTR, _tag(key, value).SerializeToString())
        return hit


_TAGS = _Tags()


def _kv(kv: KeyValue) -> bytes:
    return _ld(_SPAN_ATTR, kv.SerializeToString())


def _endpoint_attrs(ep: Any, prefix: str) -> list[bytes]:
    out: list[bytes] = []
    if not isinstance(ep, dict):
        return out
    if prefix == "peer" and isinstance(ep.get("serviceName"), str):
        out.append(_TAGS.get("peer.service", ep["serviceName"]))
    for field in ("ipv4", "ipv6"):
        if isinstance(ep.get(field), str):
            key = "network.peer.address" if prefix == "peer" else "network.local.address"
            out.append(_TAGS.get(key, ep[field]))
            break
    port = ep.get("port")
    if isinstance(port, int) and not isinstance(port, bool):
        key = "network.peer.port" if prefix == "peer" else "network.local.port"
        out.append(_kv(KeyValue(key=key, value=AnyValue(int_value=port))))
    return out


def _span(raw: Any, index: int) -> tuple[str, bytes]:
    """(service name, the span's encoded bytes, without its field key and length)."""
    if not isinstance(raw, dict):
        raise ZipkinError(f"span {index}: not a JSON object")
    trace_id = _hex_id(raw.get("traceId"), "traceId", index, (16, 32))
    span_id = _hex_id(raw.get("id"), "id", index, (16,))
    parent = raw.get("parentId")
    parent_id = _hex_id(parent, "parentId", index, (16,)) if parent is not None else b""
    if parent_id == span_id:
        parent_id = b""
    ts, dur = raw.get("timestamp", 0), raw.get("duration", 0)
    if (
        not isinstance(ts, int)
        or not isinstance(dur, int)
        or ts < 0
        or dur < 0
        or (ts + dur) * 1000 >= 1 << 64
    ):
        raise ZipkinError(f"span {index}: timestamp and duration are non-negative integers (µs)")
    name = raw.get("name") or ""
    if not isinstance(name, str):
        raise ZipkinError(f"span {index}: name must be a string")
    kind = raw.get("kind")
    if kind is not None and (not isinstance(kind, str) or kind not in _KINDS):
        raise ZipkinError(f"span {index}: kind must be one of {', '.join(_KINDS)}")
    parts = [
        _ld(_SPAN_TRACE_ID, trace_id),
        _ld(_SPAN_ID, span_id),
        _ld(_SPAN_PARENT, parent_id) if parent_id else b"",
        _str(_SPAN_NAME, name),
        _SPAN_KIND + _varint(_KINDS.get(kind or "", Span.SPAN_KIND_INTERNAL)),
        _SPAN_START + _FIXED64.pack(ts * 1000),
        _SPAN_END + _FIXED64.pack((ts + dur) * 1000),
    ]
    tags = raw.get("tags") or {}
    if not isinstance(tags, dict):
        raise ZipkinError(f"span {index}: tags must be an object of strings")
    status_code = tags.get("otel.status_code")
    get = _TAGS.get
    for key, value in tags.items():
        if not isinstance(value, str):
            raise ZipkinError(f"span {index}: tag {key!r} must be a string")
        if key in ("otel.status_code", "otel.status_description"):
            continue
        parts.append(get(key, value))
    if raw.get("shared") is True:
        parts.append(_kv(KeyValue(key="zipkin.shared", value=AnyValue(bool_value=True))))
    parts.extend(_endpoint_attrs(raw.get("remoteEndpoint"), "peer"))
    local = raw.get("localEndpoint")
    parts.extend(_endpoint_attrs(local, "local"))
    for ann in raw.get("annotations") or []:
        if not isinstance(ann, dict) or not isinstance(ann.get("timestamp"), int):
            raise ZipkinError(f"span {index}: annotations need an integer timestamp")
        if not 0 <= ann["timestamp"] * 1000 < 1 << 64:
            raise ZipkinError(f"span {index}: an annotation timestamp is out of range")
        event = _EVENT_TIME + _FIXED64.pack(ann["timestamp"] * 1000)
        parts.append(_ld(_SPAN_EVENT, event + _str(_EVENT_NAME, str(ann.get("value", "")))))
    if status_code == "ERROR" or (status_code is None and "error" in tags):
        message = tags.get("otel.status_description") or tags.get("error", "")
        status = _str(_STATUS_MESSAGE, message) + _STATUS_CODE + _varint(Status.STATUS_CODE_ERROR)
        parts.append(_ld(_SPAN_STATUS, status))
    elif status_code == "OK":
        parts.append(_ld(_SPAN_STATUS, _STATUS_CODE + _varint(Status.STATUS_CODE_OK)))
    service = ""
    if isinstance(local, dict) and isinstance(local.get("serviceName"), str):
        service = local["serviceName"]
    return service or "unknown_service", b"".join(parts)


def zipkin_to_otlp(doc: Any) -> bytes:
    """A decoded ``POST /api/v2/spans`` body → one serialized OTLP
    ``ExportTraceServiceRequest``, a resource per service."""
    if not isinstance(doc, list):
        raise ZipkinError("the body must be a JSON array of spans")
    by_service: dict[str, list[bytes]] = {}
    for i, raw in enumerate(doc):
        try:
            service, span = _span(raw, i)
        except UnicodeEncodeError:
            raise ZipkinError(f"span {i}: a string is not valid Unicode") from None
        by_service.setdefault(service, []).append(_ld(b"\x12", span))
    out = []
    for service, spans in by_service.items():
        try:
            name = _ld(b"\x12", _str(b"\x0a", service))
        except UnicodeEncodeError:
            raise ZipkinError("a service name is not valid Unicode") from None
        resource = _ld(b"\x0a", _ld(b"\x0a", _str(b"\x0a", "service.name") + name))
        scope_spans = _ld(b"\x12", _ld(b"\x0a", _str(b"\x0a", "zipkin")) + b"".join(spans))
        out.append(_ld(b"\x0a", resource + scope_spans))
    return b"".join(out)
