"""The fast OTLP encoder produces exactly what the SDK's encoder produces."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from instrumentation.otlp_encoding import encode_spans_fast


def recorder(resource: dict[str, Any] | None = None) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource(resource or {"service.name": "enc"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def same(spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> None:
    ours = encode_spans_fast(spans)
    theirs = encode_spans(spans)
    assert ExportTraceServiceRequest.FromString(ours) == theirs
    assert ours == theirs.SerializeToString()


def test_server_client_and_internal_spans_with_events_links_and_status() -> None:
    provider, exporter = recorder({"service.name": "enc", "service.instance.id": "i-1"})
    tracer = provider.get_tracer("scope.a", "1.2", schema_url="https://example/schema")
    remote = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "v1"), ("other", "x")]),
    )
    with tracer.start_as_current_span(
        "GET /items/{id}",
        context=set_span_in_context(NonRecordingSpan(remote)),
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "GET", "server.port": 8000, "ratio": 0.5},
    ) as server:
        server.add_event("cache.miss", {"key": "k1", "n": -7})
        with tracer.start_as_current_span(
            "SELECT items", kind=SpanKind.CLIENT, links=[Link(remote, {"why": "batch"})]
        ) as client:
            client.set_attribute("db.system.name", "sqlite")
            try:
                raise ValueError("boom ünïcode")
            except ValueError as exc:
                client.record_exception(exc)
                client.set_status(Status(StatusCode.ERROR, "boom"))
    other = provider.get_tracer("scope.b")
    with other.start_as_current_span(
        "internal", attributes={"tags": ("a", "b"), "flags": [True, False]}
    ):
        pass
    with other.start_as_current_span("ok") as ok:
        ok.set_status(Status(StatusCode.OK))
    same(exporter.get_finished_spans())


def test_spans_of_two_resources_in_one_batch() -> None:
    p1, e1 = recorder({"service.name": "a"})
    p2, e2 = recorder({"service.name": "b"})
    for provider in (p1, p2):
        with provider.get_tracer("t").start_as_current_span("x"):
            pass
    same([*e1.get_finished_spans(), *e2.get_finished_spans()])


def test_repeated_attribute_pairs_stay_correct_across_fields() -> None:
    """The pair cache is keyed by field too: the same key/value in a resource, span and event."""
    provider, exporter = recorder({"k": "v"})
    tracer = provider.get_tracer("t", attributes={"k": "v"})
    for _ in range(3):
        with tracer.start_as_current_span("x", attributes={"k": "v"}) as span:
            span.add_event("e", {"k": "v"})
    same(exporter.get_finished_spans())


scalars = st.one_of(
    st.text(max_size=30),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
)
values = st.one_of(scalars, st.lists(st.text(max_size=5), max_size=3).map(tuple))


@settings(max_examples=80, deadline=None)
@given(
    attributes=st.dictionaries(st.text(min_size=1, max_size=20), values, max_size=8),
    name=st.text(max_size=40),
)
def test_arbitrary_attributes_encode_identically(attributes: dict[str, Any], name: str) -> None:
    provider, exporter = recorder()
    with provider.get_tracer("t").start_as_current_span(name, attributes=attributes):
        pass
    same(exporter.get_finished_spans())
