"""Request-controlled and oversized attribute values are cut, so a queued span has a size
bound whatever a client sends (scenario 7: memory bounded)."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.trace import SpanKind
from starlette.testclient import TestClient

from instrumentation.otlp_encoding import (
    _CACHE_LIMIT,
    _CACHED_VALUE_LENGTH,
    _pair_cache,
    encode_spans_fast,
)
from instrumentation.server import MAX_REQUEST_VALUE
from instrumentation.settings import InstrumentationSettings
from instrumentation.testing import telemetry_for_tests


def test_attribute_values_are_cut_at_8192_by_default_and_the_standard_variables_win() -> None:
    assert InstrumentationSettings.from_env({}).attribute_value_length_limit == 8192
    env = {"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "100"}
    assert InstrumentationSettings.from_env(env).attribute_value_length_limit == 100
    env["OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"] = "50"
    assert InstrumentationSettings.from_env(env).attribute_value_length_limit == 50
    bad = {"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "-3"}  # warns, keeps the default
    assert InstrumentationSettings.from_env(bad).attribute_value_length_limit == 8192


def test_a_huge_path_and_user_agent_are_cut_on_the_server_span() -> None:
    with telemetry_for_tests() as t:
        app = FastAPI()
        t.telemetry.instrument(app)
        client = TestClient(app)
        path = "/" + "p" * 60_000
        client.get(path, headers={"user-agent": "u" * 60_000})
        (span,) = [s for s in t.spans() if s.kind is SpanKind.SERVER]
        attrs = span.attributes or {}
        assert len(str(attrs["url.path"])) == MAX_REQUEST_VALUE
        assert len(str(attrs["user_agent.original"])) == MAX_REQUEST_VALUE


def test_any_span_attribute_longer_than_the_limit_is_truncated() -> None:
    with telemetry_for_tests({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "64"}) as t:
        with t.telemetry.tracer().start_as_current_span("s") as span:
            span.set_attribute("big", "b" * 10_000)
            span.add_event("e", {"stack": "s" * 10_000})
        (done,) = t.spans()
        assert len(str((done.attributes or {})["big"])) == 64
        assert len(str((done.events[0].attributes or {})["stack"])) == 64


def test_the_encoders_cache_keeps_no_long_values() -> None:
    with telemetry_for_tests() as t:
        tracer = t.telemetry.tracer()
        for i in range(50):
            with tracer.start_as_current_span("s", attributes={"v": f"{i}" + "x" * 5000}):
                pass
        encode_spans_fast(t.spans())
    assert all(len(str(key[3])) <= _CACHED_VALUE_LENGTH for key in _pair_cache)
    assert len(_pair_cache) <= _CACHE_LIMIT
