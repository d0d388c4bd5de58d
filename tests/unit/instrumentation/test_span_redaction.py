"""Spans are masked like log events on their way out: secret-looking keys, credentials in
URLs, messages and stacks; everything else passes untouched (the very same object)."""

from __future__ import annotations

import logging

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Status, StatusCode

from instrumentation.logs import adopt_server_loggers
from instrumentation.redaction import MASK, Redactor, SpanRedactor
from instrumentation.testing import telemetry_for_tests


def _span(**attributes: object) -> ReadableSpan:
    with telemetry_for_tests() as t:
        with t.telemetry.tracer().start_as_current_span("s") as span:
            span.set_attributes(attributes)  # type: ignore[arg-type]
            span.add_event("exception", {"exception.message": "login failed password=hunter2"})
            span.set_status(Status(StatusCode.ERROR, "RuntimeError: token=abc123"))
        (done,) = t.spans()
    return done


def test_secret_keys_urls_messages_and_the_status_are_masked() -> None:
    span = _span(
        **{
            "http.request.header.authorization": "Bearer abc",
            "url.full": "https://bob:pa55@api.example/v1?api_key=K3Y&page=2",
            "http.route": "/v1",
        }
    )
    out = SpanRedactor(Redactor())(span)
    attrs = dict(out.attributes or {})
    assert attrs["http.request.header.authorization"] == MASK
    assert attrs["url.full"] == f"https://{MASK}@api.example/v1?api_key={MASK}&page=2"
    assert attrs["http.route"] == "/v1"
    assert (out.events[0].attributes or {})["exception.message"] == f"login failed password={MASK}"
    assert out.status.description == f"RuntimeError: token={MASK}"
    assert out.context == span.context
    assert out.name == span.name


def test_a_span_with_nothing_to_mask_is_passed_on_as_is() -> None:
    with telemetry_for_tests() as t:
        with t.telemetry.tracer().start_as_current_span(
            "s", attributes={"url.full": "http://x/a?b=1"}
        ):
            pass
        (span,) = t.spans()
    assert SpanRedactor(Redactor())(span) is span


def test_extra_keys_from_settings_mask_span_attributes_too() -> None:
    span = _span(**{"app.customer.iban": "DE00123"})
    out = SpanRedactor(Redactor(["iban"]))(span)
    assert (out.attributes or {})["app.customer.iban"] == MASK


def test_server_loggers_with_their_own_handlers_are_routed_through_ours() -> None:
    logger = logging.getLogger("uvicorn.error")
    saved = (list(logger.handlers), logger.propagate)
    try:
        logger.addHandler(logging.StreamHandler())
        logger.propagate = False
        adopt_server_loggers(("uvicorn.error",))
        assert logger.handlers == []
        assert logger.propagate
    finally:
        logger.handlers[:] = saved[0]
        logger.propagate = saved[1]
