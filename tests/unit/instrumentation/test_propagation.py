"""W3C/B3 propagation at the server: good headers continue the trace, bad ones never 500."""

from __future__ import annotations

import string

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from instrumentation.testing import TestTelemetry, telemetry_for_tests
from tests.unit.instrumentation.conftest import server_spans

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def app_client(t: TestTelemetry) -> TestClient:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    t.telemetry.instrument(app)
    return TestClient(app, raise_server_exceptions=False)


def trace_of(t: TestTelemetry) -> tuple[str, str | None]:
    (span,) = server_spans(t)
    parent = format(span.parent.span_id, "016x") if span.parent else None
    return format(span.context.trace_id, "032x"), parent


def test_valid_traceparent_is_continued(tel: TestTelemetry) -> None:
    c = app_client(tel)
    assert c.get("/ping", headers={"traceparent": f"00-{TRACE}-{PARENT}-01"}).status_code == 200
    assert trace_of(tel) == (TRACE, PARENT)


@pytest.mark.parametrize(
    "header",
    [
        f"ff-{TRACE}-{PARENT}-01",  # version ff is invalid
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"00-{TRACE.upper()}-{PARENT}-01",  # uppercase hex
        f"00-{TRACE}-{PARENT}",  # missing flags
        "garbage",
        "",
        "00-" + "g" * 32 + "-" + PARENT + "-01",
    ],
)
def test_invalid_traceparent_starts_a_new_trace(tel: TestTelemetry, header: str) -> None:
    c = app_client(tel)
    assert c.get("/ping", headers={"traceparent": header}).status_code == 200
    trace_id, parent = trace_of(tel)
    assert trace_id != TRACE
    assert parent is None


@pytest.mark.parametrize(
    "tracestate",
    [
        ",".join(f"k{i}=v{i}" for i in range(40)),  # more than 32 members
        "k=" + "v" * 10_000,  # oversized value
        "=,=,==,",
        "\x00\x01",
    ],
)
def test_bad_tracestate_keeps_the_trace_and_never_fails(
    tel: TestTelemetry, tracestate: str
) -> None:
    c = app_client(tel)
    headers = {"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": tracestate}
    assert c.get("/ping", headers=headers).status_code == 200
    assert trace_of(tel)[0] == TRACE


def test_b3_single_and_multi_are_accepted_by_default(tel: TestTelemetry) -> None:
    c = app_client(tel)
    c.get("/ping", headers={"b3": f"{TRACE}-{PARENT}-1"})
    c.get("/ping", headers={"X-B3-TraceId": TRACE, "X-B3-SpanId": PARENT, "X-B3-Sampled": "1"})
    spans = server_spans(tel)
    assert [format(s.context.trace_id, "032x") for s in spans] == [TRACE, TRACE]


def test_w3c_wins_when_both_formats_arrive(tel: TestTelemetry) -> None:
    c = app_client(tel)
    other = "a" * 32
    c.get("/ping", headers={"b3": f"{other}-{PARENT}-1", "traceparent": f"00-{TRACE}-{PARENT}-01"})
    assert trace_of(tel)[0] == TRACE


def test_default_injection_is_w3c_only(tel: TestTelemetry) -> None:
    assert tel.telemetry.propagator is not None
    carrier: dict[str, str] = {}
    with tel.telemetry.tracer().start_as_current_span("client"):
        tel.telemetry.propagator.inject(carrier)
    assert set(carrier) == {"traceparent"}


def test_b3_setting_injects_the_single_header() -> None:
    with telemetry_for_tests({"OTEL_PROPAGATORS": "b3"}) as t:
        assert t.telemetry.propagator is not None
        carrier: dict[str, str] = {}
        with t.telemetry.tracer().start_as_current_span("client"):
            t.telemetry.propagator.inject(carrier)
        assert set(carrier) == {"b3"}


def test_b3multi_setting_injects_the_multi_headers() -> None:
    with telemetry_for_tests({"OTEL_PROPAGATORS": "tracecontext,b3multi"}) as t:
        assert t.telemetry.propagator is not None
        carrier: dict[str, str] = {}
        with t.telemetry.tracer().start_as_current_span("client"):
            t.telemetry.propagator.inject(carrier)
        assert {"traceparent", "x-b3-traceid", "x-b3-spanid"} <= set(carrier)


header_text = st.text(alphabet=string.printable.replace("\r", "").replace("\n", ""), max_size=200)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(traceparent=header_text, tracestate=header_text, baggage=header_text, b3=header_text)
def test_arbitrary_propagation_headers_never_cause_a_500(
    traceparent: str, tracestate: str, baggage: str, b3: str
) -> None:
    with telemetry_for_tests() as t:
        c = app_client(t)
        headers = {
            "traceparent": traceparent,
            "tracestate": tracestate,
            "baggage": baggage,
            "b3": b3,
        }
        assert c.get("/ping", headers=headers).status_code == 200
