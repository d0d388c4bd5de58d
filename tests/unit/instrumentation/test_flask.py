"""Flask: one line instruments it; same span and metric shape as FastAPI."""

from __future__ import annotations

from flask import Flask, abort
from opentelemetry.trace import StatusCode

from instrumentation.testing import TestTelemetry
from tests.unit.instrumentation.conftest import server_spans

# Test clients hand the body over lazily; ``buffered=True`` makes them read and close it,
# as every WSGI server does, which is when the request's span ends.


def make_app() -> Flask:
    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/gone")
    def gone() -> None:
        abort(410)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaput")

    return app


def test_span_named_after_the_url_rule(tel: TestTelemetry) -> None:
    app = make_app()
    tel.telemetry.instrument(app)
    c = app.test_client()
    assert c.get("/items/7").json == {"id": 7}
    (span,) = server_spans(tel)
    assert span.name == "GET /items/<int:item_id>"
    assert span.attributes["http.route"] == "/items/<int:item_id>"
    assert span.attributes["url.path"] == "/items/7"
    assert span.attributes["http.response.status_code"] == 200
    labels = {
        "http_request_method": "GET",
        "http_route": "/items/<int:item_id>",
        "http_response_status_code": "200",
    }
    assert tel.sample("http_server_request_duration_seconds_count", labels) == 1


def test_exception_flask_turned_into_a_500_is_on_the_span(tel: TestTelemetry) -> None:
    app = make_app()
    tel.telemetry.instrument(app)
    assert app.test_client().get("/boom", buffered=True).status_code == 500
    (span,) = server_spans(tel)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "RuntimeError"
    assert any(e.name == "exception" for e in span.events)
    assert (
        tel.sample(
            "http_server_exceptions_total", {"http_route": "/boom", "error_type": "RuntimeError"}
        )
        == 1
    )


def test_http_errors_and_unknown_paths(tel: TestTelemetry) -> None:
    app = make_app()
    tel.telemetry.instrument(app)
    c = app.test_client()
    assert c.get("/gone", buffered=True).status_code == 410
    assert c.get("/nowhere", buffered=True).status_code == 404
    gone, nowhere = server_spans(tel)
    assert gone.name == "GET /gone"
    assert gone.status.status_code is StatusCode.UNSET
    assert nowhere.name == "GET"
    assert "http.route" not in nowhere.attributes


def test_incoming_traceparent_is_continued(tel: TestTelemetry) -> None:
    app = make_app()
    tel.telemetry.instrument(app)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    app.test_client().get(
        "/items/1", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}, buffered=True
    )
    (span,) = server_spans(tel)
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None
    assert span.parent.span_id == 0x00F067AA0BA902B7


def test_metrics_endpoint_and_instrumenting_after_first_request(tel: TestTelemetry) -> None:
    app = make_app()
    c = app.test_client()
    c.get(
        "/items/1", buffered=True
    )  # Flask refuses @before_request now; instrument must still work
    tel.telemetry.instrument(app)
    c.get("/items/2", buffered=True)
    assert [s.name for s in server_spans(tel)] == ["GET /items/<int:item_id>"]
    resp = c.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert resp.status_code == 200
    assert "trace_id=" in resp.get_data(as_text=True)
