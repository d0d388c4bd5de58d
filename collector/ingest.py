"""Decoding every accepted payload kind into table batches — one function for the receivers
and for write-ahead-log replay, so a replayed request is stored exactly as it was the first
time (same rows, same refusals)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import pyarrow as pa
from google.protobuf.json_format import ParseDict, ParseError
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.flatten.common import Rejections
from collector.flatten.logs import flatten_logs
from collector.flatten.metrics import MetricColumns, flatten_metrics
from collector.flatten.prom import flatten_exposition
from collector.flatten.spans import flatten_traces
from collector.flatten.zipkin import ZipkinError, zipkin_to_otlp
from collector.redact import redact_message, redact_request, suspect
from collector.series_limit import drop_series

__all__ = ["Decoded", "Kind", "MalformedBody", "decode", "redact"]


class Kind(IntEnum):
    """What a request body is; stored in each write-ahead-log record."""

    OTLP_TRACES_PROTO = 1
    OTLP_TRACES_JSON = 2
    OTLP_METRICS_PROTO = 3
    OTLP_METRICS_JSON = 4
    OTLP_LOGS_PROTO = 5
    OTLP_LOGS_JSON = 6
    ZIPKIN_JSON = 7
    SCRAPE = 8

    @property
    def signal(self) -> str:
        if self in (Kind.OTLP_TRACES_PROTO, Kind.OTLP_TRACES_JSON, Kind.ZIPKIN_JSON):
            return "traces"
        if self in (Kind.OTLP_LOGS_PROTO, Kind.OTLP_LOGS_JSON):
            return "logs"
        return "metrics"


class MalformedBody(ValueError):
    """The body cannot be decoded at all; answered 400 and never stored."""


@dataclass
class Decoded:
    signal: str
    tables: dict[str, pa.Table]
    accepted: int
    rejected: Rejections = field(default_factory=Rejections)
    point_keys: list[int] = field(default_factory=list)
    """Metrics: the series of each ``metric_points`` row (collector/series_limit.py)."""
    exemplar_keys: list[int] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(int(t.nbytes) for t in self.tables.values())


_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_to_b64(obj: dict[str, Any]) -> None:
    for key in _ID_FIELDS:
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise MalformedBody(f"{key} must be a hex string")
        try:
            obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
        except ValueError:
            raise MalformedBody(f"{key} {value[:40]!r} is not hex") from None


def _each(obj: Any, *path: str) -> list[dict[str, Any]]:
    """Objects found along ``path`` (lists are walked), tolerating absent keys."""
    items = [obj]
    for key in path:
        nxt: list[Any] = []
        for it in items:
            if not isinstance(it, dict):
                raise MalformedBody(f"expected an object at {key!r}")
            value = it.get(key)
            if value is None:
                continue
            nxt.extend(value if isinstance(value, list) else [value])
        items = nxt
    for it in items:
        if not isinstance(it, dict):
            raise MalformedBody(f"expected an object under {path[-1]!r}")
    return items


def _otlp_json(body: bytes, message: Message, kind: Kind) -> None:
    """OTLP/JSON (hex ids) into ``message`` via protobuf's JSON parser (base64 ids)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedBody(f"invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedBody("the body must be a JSON object")
    if kind == Kind.OTLP_TRACES_JSON:
        for sp in _each(doc, "resourceSpans", "scopeSpans", "spans"):
            _hex_to_b64(sp)
            for lk in _each(sp, "links"):
                _hex_to_b64(lk)
    elif kind == Kind.OTLP_LOGS_JSON:
        for rec in _each(doc, "resourceLogs", "scopeLogs", "logRecords"):
            _hex_to_b64(rec)
    else:
        for m in _each(doc, "resourceMetrics", "scopeMetrics", "metrics"):
            for data in ("gauge", "sum", "histogram", "exponentialHistogram", "summary"):
                for dp in _each(m, data, "dataPoints"):
                    for ex in _each(dp, "exemplars"):
                        _hex_to_b64(ex)
    try:
        ParseDict(doc, message, ignore_unknown_fields=True)
    except (ParseError, ValueError, TypeError) as exc:
        raise MalformedBody(f"invalid OTLP/JSON: {exc}") from None


def _proto(body: bytes, message: Message) -> None:
    try:
        message.ParseFromString(body)
    except (DecodeError, ValueError) as exc:
        raise MalformedBody(f"invalid protobuf: {exc}") from None


_PROTO_OF_JSON = {
    Kind.OTLP_TRACES_JSON: (Kind.OTLP_TRACES_PROTO, ExportTraceServiceRequest),
    Kind.OTLP_METRICS_JSON: (Kind.OTLP_METRICS_PROTO, ExportMetricsServiceRequest),
    Kind.OTLP_LOGS_JSON: (Kind.OTLP_LOGS_PROTO, ExportLogsServiceRequest),
}


def redact(kind: Kind, body: bytes) -> tuple[Kind, bytes]:
    """``(kind, body)`` with secrets masked (collector/redact.py), before anything is
    written; unchanged for the many bodies that hold nothing that looks secret. An
    OTLP/JSON body with secrets comes back as OTLP protobuf (its kind changes with it)."""
    if kind in _PROTO_OF_JSON:
        if not suspect(body):
            return kind, body
        proto_kind, message_type = _PROTO_OF_JSON[kind]
        msg = message_type()
        try:
            _otlp_json(body, msg, kind)
        except MalformedBody:
            return kind, body  # refused by decode; nothing is stored
        redact_message(msg)
        return proto_kind, msg.SerializeToString()
    if kind == Kind.ZIPKIN_JSON:
        fmt = "zipkin"
    elif kind == Kind.SCRAPE:
        fmt = "exposition"
    else:
        fmt = "proto"
    masked = redact_request(kind.signal, body, fmt)
    return kind, body if masked is None else masked


def decode(kind: Kind, body: bytes, received_ns: int, meta: dict[str, Any]) -> Decoded:
    """Decode, validate and flatten one body; raises MalformedBody for an undecodable one."""
    if kind in (Kind.OTLP_TRACES_PROTO, Kind.OTLP_TRACES_JSON, Kind.ZIPKIN_JSON):
        if kind == Kind.OTLP_TRACES_JSON:
            req = ExportTraceServiceRequest()
            _otlp_json(body, req, kind)
            body = req.SerializeToString()
        elif kind == Kind.ZIPKIN_JSON:
            try:
                body = zipkin_to_otlp(json.loads(body))
            except (ValueError, UnicodeDecodeError) as exc:
                if isinstance(exc, ZipkinError):
                    raise MalformedBody(str(exc)) from None
                raise MalformedBody(f"invalid JSON: {exc}") from None
        try:
            spans = flatten_traces(body, received_ns)
        except (DecodeError, ValueError, binascii.Error) as exc:
            raise MalformedBody(f"invalid protobuf: {exc}") from None
        return Decoded(
            "traces",
            {"spans": spans.spans, "resources": spans.resources, "scopes": spans.scopes},
            spans.count,
            spans.rejected,
        )
    if kind in (Kind.OTLP_LOGS_PROTO, Kind.OTLP_LOGS_JSON):
        lreq = ExportLogsServiceRequest()
        if kind == Kind.OTLP_LOGS_JSON:
            _otlp_json(body, lreq, kind)
        else:
            _proto(body, lreq)
        logs = flatten_logs(lreq, received_ns)
        return Decoded(
            "logs",
            {"logs": logs.logs, "resources": logs.resources, "scopes": logs.scopes},
            logs.count,
            logs.rejected,
        )
    if kind in (Kind.OTLP_METRICS_PROTO, Kind.OTLP_METRICS_JSON):
        mreq = ExportMetricsServiceRequest()
        if kind == Kind.OTLP_METRICS_JSON:
            _otlp_json(body, mreq, kind)
        else:
            _proto(body, mreq)
        return _metrics(flatten_metrics(mreq, received_ns), meta)
    try:
        text = body.decode("utf-8")
        m = flatten_exposition(
            text,
            str(meta.get("content_type", "")),
            str(meta.get("job", "scrape")),
            str(meta.get("instance", "")),
            int(meta.get("scraped_ns", received_ns)),
            received_ns,
        )
    except (ValueError, UnicodeDecodeError, KeyError, IndexError) as exc:
        raise MalformedBody(f"invalid exposition: {exc}") from None
    return _metrics(m, meta)


def _metrics(m: MetricColumns, meta: dict[str, Any]) -> Decoded:
    """Metric columns as a batch; on replay, without the series the limiter refused when
    the request arrived (their keys are in the log record's ``drop_series``)."""
    points, exemplars, accepted = m.points, m.exemplars, m.count
    if meta.get("drop_series"):
        points, exemplars, n = drop_series(
            points, exemplars, m.point_keys, m.exemplar_keys, set(meta["drop_series"])
        )
        accepted = max(0, accepted - n)
    return Decoded(
        "metrics",
        {"metric_points": points, "exemplars": exemplars},
        accepted,
        m.rejected,
        m.point_keys,
        m.exemplar_keys,
    )
