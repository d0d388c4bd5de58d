"""Wire-compatible "lazy" views of OTLP trace messages, for the hot path.

An embedded message and a ``bytes`` field look the same on the wire, so these messages
declare ``Span.attributes`` (and events, links, status, resource, scope) as ``bytes``.
Parsing a request with them is still done by the C protobuf runtime, but each attribute
arrives as the raw bytes of its ``KeyValue`` — which repeat across spans (``http.method=GET``)
and can be looked up in a cache instead of being decoded field by field in Python.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["LazyTraceRequest"]

_F = descriptor_pb2.FieldDescriptorProto


def _build() -> Any:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="narrows_lazy_trace.proto", package="narrows.lazy", syntax="proto3"
    )

    def msg(name: str, fields: list[tuple[str, int, int, int, str | None]]) -> None:
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name

    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    msg(
        "Span",
        [
            ("trace_id", 1, _F.TYPE_BYTES, opt, None),
            ("span_id", 2, _F.TYPE_BYTES, opt, None),
            ("trace_state", 3, _F.TYPE_STRING, opt, None),
            ("parent_span_id", 4, _F.TYPE_BYTES, opt, None),
            ("name", 5, _F.TYPE_STRING, opt, None),
            ("kind", 6, _F.TYPE_INT32, opt, None),
            ("start_time_unix_nano", 7, _F.TYPE_FIXED64, opt, None),
            ("end_time_unix_nano", 8, _F.TYPE_FIXED64, opt, None),
            ("attributes", 9, _F.TYPE_BYTES, rep, None),
            ("dropped_attributes_count", 10, _F.TYPE_UINT32, opt, None),
            ("events", 11, _F.TYPE_BYTES, rep, None),
            ("dropped_events_count", 12, _F.TYPE_UINT32, opt, None),
            ("links", 13, _F.TYPE_BYTES, rep, None),
            ("dropped_links_count", 14, _F.TYPE_UINT32, opt, None),
            ("status", 15, _F.TYPE_BYTES, opt, None),
            ("flags", 16, _F.TYPE_FIXED32, opt, None),
        ],
    )
    msg(
        "ScopeSpans",
        [
            ("scope", 1, _F.TYPE_BYTES, opt, None),
            ("spans", 2, _F.TYPE_MESSAGE, rep, ".narrows.lazy.Span"),
            ("schema_url", 3, _F.TYPE_STRING, opt, None),
        ],
    )
    msg(
        "ResourceSpans",
        [
            ("resource", 1, _F.TYPE_BYTES, opt, None),
            ("scope_spans", 2, _F.TYPE_MESSAGE, rep, ".narrows.lazy.ScopeSpans"),
            ("schema_url", 3, _F.TYPE_STRING, opt, None),
        ],
    )
    msg(
        "ExportTraceServiceRequest",
        [("resource_spans", 1, _F.TYPE_MESSAGE, rep, ".narrows.lazy.ResourceSpans")],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("narrows.lazy.ExportTraceServiceRequest")
    )


LazyTraceRequest: Any = _build()
