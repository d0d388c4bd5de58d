"""Synthetic OTLP trace requests shaped like the demo's spans (docs/telemetry.md)."""

from __future__ import annotations

import random

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

ROUTES = ["/items/{key}", "/items", "/search", "/checkout", "/multi"]


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def trace_request(n_spans: int = 512, seed: int = 0, base_ns: int | None = None) -> bytes:
    """One serialized request of ``n_spans`` spans: traces of 1 server + cache + shard spans."""
    rng = random.Random(seed)
    base = base_ns if base_ns is not None else 1_700_000_000_000_000_000
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(
        [
            _kv("service.name", "demo"),
            _kv("service.instance.id", "demo-1"),
            _kv("telemetry.sdk.language", "python"),
            _kv("telemetry.sdk.name", "opentelemetry"),
            _kv("telemetry.sdk.version", "1.45.1"),
        ]
    )
    ss = rs.scope_spans.add()
    ss.scope.name = "narrows.demo"
    made = 0
    while made < n_spans:
        trace_id = rng.getrandbits(128).to_bytes(16, "big")
        root_id = rng.getrandbits(64).to_bytes(8, "big")
        start = base + rng.randrange(0, 60_000_000_000)
        dur = rng.randrange(1_000_000, 200_000_000)
        route = rng.choice(ROUTES)
        status = 500 if rng.random() < 0.02 else 200
        root = Span(
            trace_id=trace_id,
            span_id=root_id,
            name=f"GET {route}",
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=start,
            end_time_unix_nano=start + dur,
        )
        root.attributes.extend(
            [
                _kv("http.request.method", "GET"),
                _kv("http.route", route),
                _kv("http.response.status_code", status),
                _kv("url.scheme", "http"),
                _kv("url.path", route.replace("{key}", str(rng.randrange(1000)))),
                _kv("server.address", "127.0.0.1"),
                _kv("server.port", 8000),
                _kv("client.address", "127.0.0.1"),
                _kv("user_agent.original", "narrows-load/0.1"),
            ]
        )
        if status == 500:
            root.status.code = 2
        ss.spans.append(root)
        made += 1
        children = min(n_spans - made, rng.randrange(2, 6))
        for c in range(children):
            child = Span(
                trace_id=trace_id,
                span_id=rng.getrandbits(64).to_bytes(8, "big"),
                parent_span_id=root_id,
                kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=start + c * 1000,
                end_time_unix_nano=start + dur // 2,
            )
            if c == 0:
                child.name = "cache.get items"
                child.attributes.extend(
                    [_kv("app.cache.name", "items"), _kv("app.cache.hit", rng.random() < 0.8)]
                )
            else:
                shard = str(rng.randrange(4))
                child.name = "SELECT items"
                child.attributes.extend(
                    [
                        _kv("db.system.name", "sqlite"),
                        _kv("db.namespace", f"shard{shard}"),
                        _kv("db.operation.name", "SELECT"),
                        _kv("db.collection.name", "items"),
                        _kv("app.shard.id", shard),
                        _kv("app.pool.wait_ms", rng.random() * 5),
                    ]
                )
            ss.spans.append(child)
            made += 1
    return req.SerializeToString()


_ZIPKIN_KINDS = {Span.SPAN_KIND_SERVER: "SERVER", Span.SPAN_KIND_CLIENT: "CLIENT"}


def zipkin_request(n_spans: int = 512, seed: int = 0, base_ns: int | None = None) -> bytes:
    """The spans of ``trace_request(n_spans, seed, base_ns)`` as a Zipkin v2 JSON list, the
    way the OpenTelemetry Zipkin exporter writes them (µs times, stringified tags)."""
    import json

    req = ExportTraceServiceRequest.FromString(trace_request(n_spans, seed, base_ns))
    out: list[dict[str, object]] = []
    for rs in req.resource_spans:
        service = next(
            kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name"
        )
        for ss in rs.scope_spans:
            for sp in ss.spans:
                tags: dict[str, str] = {}
                for kv in sp.attributes:
                    which = kv.value.WhichOneof("value")
                    value = getattr(kv.value, which)
                    tags[kv.key] = str(value).lower() if isinstance(value, bool) else str(value)
                if sp.status.code == 2:
                    tags["otel.status_code"] = "ERROR"
                    tags["error"] = ""
                span: dict[str, object] = {
                    "traceId": sp.trace_id.hex(),
                    "id": sp.span_id.hex(),
                    "name": sp.name,
                    "timestamp": sp.start_time_unix_nano // 1000,
                    "duration": (sp.end_time_unix_nano - sp.start_time_unix_nano) // 1000,
                    "localEndpoint": {"serviceName": service},
                    "tags": tags,
                }
                if sp.parent_span_id:
                    span["parentId"] = sp.parent_span_id.hex()
                if sp.kind in _ZIPKIN_KINDS:
                    span["kind"] = _ZIPKIN_KINDS[sp.kind]
                out.append(span)
    return json.dumps(out, separators=(",", ":")).encode()
