"""Known spans for the collector's tests: built in Python, stored through the real decode →
flatten → insert path, so a test can compute the expected answer from the same list."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import duckdb
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.ingest import Kind, decode
from collector.store.schema import create_schema
from collector.store.writer import Batch, insert_batches

BASE_NS = 1_700_000_000_000_000_000
MINUTE = 60_000_000_000


@dataclass
class S:
    """One span as a test states it."""

    trace: int
    span: int
    parent: int
    name: str
    start: int
    duration: int
    kind: int = Span.SPAN_KIND_CLIENT
    error: bool = False
    service: str = "demo"
    attrs: dict[str, object] = field(default_factory=dict)


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def request(spans: list[S]) -> bytes:
    req = ExportTraceServiceRequest()
    by_service: dict[str, list[S]] = {}
    for s in spans:
        by_service.setdefault(s.service, []).append(s)
    for service, group in by_service.items():
        rs = req.resource_spans.add()
        rs.resource.attributes.append(_kv("service.name", service))
        ss = rs.scope_spans.add()
        for s in group:
            sp = ss.spans.add(
                trace_id=s.trace.to_bytes(16, "big"),
                span_id=s.span.to_bytes(8, "big"),
                parent_span_id=s.parent.to_bytes(8, "big") if s.parent else b"",
                name=s.name,
                kind=s.kind,
                start_time_unix_nano=s.start,
                end_time_unix_nano=s.start + s.duration,
            )
            sp.attributes.extend(_kv(k, v) for k, v in s.attrs.items())
            if s.error:
                sp.status.code = 2
    return req.SerializeToString()


def store(
    spans: list[S], conn: duckdb.DuckDBPyConnection | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory store holding ``spans`` (in requests of 500, like a sender would)."""
    if conn is None:
        conn = duckdb.connect(config={"threads": 1})
        create_schema(conn)
    for i in range(0, len(spans), 500):
        body = request(spans[i : i + 500])
        decoded = decode(Kind.OTLP_TRACES_PROTO, body, BASE_NS + i, {})
        insert_batches(conn, [Batch(decoded, None, BASE_NS + i)])
    return conn


def demo_spans(n_traces: int, seed: int = 1) -> list[S]:
    """Traces of one server span and 1–4 shard/cache children over ten minutes."""
    rng = random.Random(seed)
    out: list[S] = []
    for t in range(n_traces):
        trace = rng.getrandbits(128) | 1
        root = rng.getrandbits(63) | 1
        start = BASE_NS + rng.randrange(10 * MINUTE)
        dur = rng.randrange(1_000_000, 300_000_000)
        route = rng.choice(["/items/{key}", "/search", "/checkout"])
        out.append(
            S(
                trace,
                root,
                0,
                f"GET {route}",
                start,
                dur,
                Span.SPAN_KIND_SERVER,
                error=rng.random() < 0.05,
                attrs={"http.route": route, "http.response.status_code": 200},
            )
        )
        for c in range(rng.randrange(1, 5)):
            shard = str(rng.randrange(4))
            slow = shard == "2" and rng.random() < 0.7
            attrs: dict[str, object] = {"app.shard.id": shard, "db.system.name": "sqlite"}
            if c == 0:
                attrs = {"app.cache.hit": rng.random() < 0.8}
            if rng.random() < 0.3:
                attrs["peer.tier"] = rng.choice(["gold", "silver"])
            out.append(
                S(
                    trace,
                    rng.getrandbits(63) | 1,
                    root,
                    "SELECT items" if c else "cache.get",
                    start + 1000 * (c + 1),
                    (dur // 2) if slow else rng.randrange(100_000, dur // 2 + 100_001),
                    attrs=attrs,
                )
            )
        del t
    return out
