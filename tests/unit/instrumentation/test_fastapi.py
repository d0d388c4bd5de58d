"""FastAPI/Starlette: one SERVER span per request with the stable HTTP conventions, RED metrics."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import BackgroundTasks, FastAPI, HTTPException, WebSocket
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from instrumentation.testing import TestTelemetry, telemetry_for_tests
from tests.unit.instrumentation.conftest import server_spans


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/missing/{item_id}")
    async def missing(item_id: int) -> dict[str, int]:
        raise HTTPException(status_code=404, detail="nope")

    @app.get("/boom")
    async def boom() -> dict[str, int]:
        raise RuntimeError("kaput")

    @app.get("/unavailable")
    async def unavailable() -> JSONResponse:
        return JSONResponse({"error": "down"}, status_code=503)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def client(t: TestTelemetry, app: Any = None) -> TestClient:
    app = app or make_app()
    t.telemetry.instrument(app)
    return TestClient(app, raise_server_exceptions=False)


def test_span_is_named_after_the_route_template_not_the_raw_path(tel: TestTelemetry) -> None:
    c = client(tel)
    assert c.get("/items/41").status_code == 200
    assert c.get("/items/42").status_code == 200
    spans = server_spans(tel)
    assert [s.name for s in spans] == ["GET /items/{item_id}"] * 2
    attrs = spans[0].attributes
    assert attrs["http.route"] == "/items/{item_id}"
    assert attrs["http.request.method"] == "GET"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.scheme"] == "http"
    assert attrs["url.path"] == "/items/41"
    assert attrs["server.address"] == "testserver"
    assert "error.type" not in attrs
    assert spans[0].status.status_code is StatusCode.UNSET


def test_metric_labels_use_the_template(tel: TestTelemetry) -> None:
    c = client(tel)
    for i in range(5):
        c.get(f"/items/{i}")
    labels = {
        "http_request_method": "GET",
        "http_route": "/items/{item_id}",
        "http_response_status_code": "200",
    }
    assert tel.sample("http_server_request_duration_seconds_count", labels) == 5
    body, _ = tel.scrape()
    assert "/items/3" not in body


def test_unmatched_route_is_one_series_and_the_span_is_named_by_method(tel: TestTelemetry) -> None:
    c = client(tel)
    assert c.get("/no/such/a").status_code == 404
    assert c.get("/no/such/b").status_code == 404
    spans = server_spans(tel)
    assert [s.name for s in spans] == ["GET", "GET"]
    assert "http.route" not in spans[0].attributes
    labels = {"http_request_method": "GET", "http_route": "", "http_response_status_code": "404"}
    assert tel.sample("http_server_request_duration_seconds_count", labels) == 2


def test_handled_4xx_is_not_an_error(tel: TestTelemetry) -> None:
    client(tel).get("/missing/1")
    (span,) = server_spans(tel)
    assert span.attributes["http.response.status_code"] == 404
    assert span.status.status_code is StatusCode.UNSET


def test_5xx_response_marks_the_span_error_with_the_status_as_error_type(
    tel: TestTelemetry,
) -> None:
    client(tel).get("/unavailable")
    (span,) = server_spans(tel)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "503"


def test_exception_is_recorded_as_500_with_an_exception_event(tel: TestTelemetry) -> None:
    assert client(tel).get("/boom").status_code == 500
    (span,) = server_spans(tel)
    assert span.name == "GET /boom"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == 500
    assert span.attributes["error.type"] == "RuntimeError"
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.type"] == "RuntimeError"
    assert event.attributes["exception.message"] == "kaput"
    assert "Traceback" in str(event.attributes["exception.stacktrace"])
    labels = {"http_route": "/boom", "error_type": "RuntimeError"}
    assert tel.sample("http_server_exceptions_total", labels) == 1


def test_active_requests_gauge_returns_to_zero(tel: TestTelemetry) -> None:
    c = client(tel)
    c.get("/items/1")
    c.get("/boom")
    assert tel.sample("http_server_active_requests", {"http_request_method": "GET"}) == 0


def test_unknown_method_is_folded_into_other(tel: TestTelemetry) -> None:
    c = client(tel)
    c.request("FOOBAR", "/items/1")
    (span,) = server_spans(tel)
    assert span.attributes["http.request.method"] == "_OTHER"
    assert span.attributes["http.request.method_original"] == "FOOBAR"


def test_instrumenting_twice_still_gives_one_span(tel: TestTelemetry) -> None:
    app = make_app()
    tel.telemetry.instrument(app)
    tel.telemetry.instrument(app)
    TestClient(app).get("/items/1")
    assert len(server_spans(tel)) == 1


def test_instrumenting_a_started_app_rebuilds_its_stack(tel: TestTelemetry) -> None:
    app = make_app()
    c = TestClient(app)
    c.get("/items/1")  # the middleware stack is built now
    tel.telemetry.instrument(app)
    c.get("/items/2")
    assert [s.attributes["url.path"] for s in server_spans(tel)] == ["/items/2"]


def test_excluded_urls_are_not_traced_or_measured() -> None:
    with telemetry_for_tests({"OTEL_PYTHON_EXCLUDED_URLS": "healthz"}) as t:
        c = client(t)
        c.get("/healthz")
        c.get("/items/1")
        assert [s.name for s in server_spans(t)] == ["GET /items/{item_id}"]
        body, _ = t.scrape()
        assert "/healthz" not in body


def test_metrics_endpoint_is_served_without_redirect_or_span(tel: TestTelemetry) -> None:
    c = client(tel)
    c.get("/items/1")
    resp = c.get("/metrics", follow_redirects=False)
    assert resp.status_code == 200
    assert "http_server_request_duration_seconds_bucket" in resp.text
    assert len(server_spans(tel)) == 1
    assert c.post("/metrics").status_code == 405


def test_starlette_app_with_a_mounted_sub_app_reports_the_full_template(tel: TestTelemetry) -> None:
    async def user(request: Any) -> JSONResponse:
        return JSONResponse({"user": request.path_params["name"]})

    inner = Starlette(routes=[Route("/users/{name}", user)])
    app = Starlette(routes=[Mount("/api", app=inner)])
    c = client(tel, app)
    assert c.get("/api/users/ann").json() == {"user": "ann"}
    (span,) = server_spans(tel)
    assert span.name == "GET /api/users/{name}"


def test_lifespan_and_websockets_pass_through(tel: TestTelemetry) -> None:
    app = make_app()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    tel.telemetry.instrument(app)
    with TestClient(app) as c, c.websocket_connect("/ws") as socket:
        assert socket.receive_text() == "hi"
    assert server_spans(tel) == []


def test_span_kind_is_server_and_sdk_scope_is_narrows(tel: TestTelemetry) -> None:
    client(tel).get("/items/1")
    (span,) = tel.spans()
    assert span.kind is SpanKind.SERVER
    assert span.instrumentation_scope.name == "narrows.instrumentation.server"
    assert span.resource.attributes["service.name"] == "unit"
    assert span.resource.attributes["service.instance.id"]


@pytest.mark.parametrize("accept", ["", "text/plain", "*/*"])
def test_plain_text_scrape_has_no_exemplars(tel: TestTelemetry, accept: str) -> None:
    c = client(tel)
    c.get("/items/1")
    resp = c.get("/metrics", headers={"accept": accept})
    assert resp.headers["content-type"].startswith("text/plain")
    bucket_lines = [
        line for line in resp.text.splitlines() if line.startswith("http_server_request_duration")
    ]
    assert bucket_lines
    assert not any("trace_id" in line for line in bucket_lines)


def test_openmetrics_scrape_carries_the_request_trace_id_as_exemplar(tel: TestTelemetry) -> None:
    c = client(tel)
    c.get("/items/1")
    (span,) = server_spans(tel)
    trace_id = format(span.context.trace_id, "032x")
    span_id = format(span.context.span_id, "016x")
    resp = c.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert resp.headers["content-type"].startswith("application/openmetrics-text")
    exemplars = [line for line in resp.text.splitlines() if " # {" in line]
    assert any(
        f'trace_id="{trace_id}"' in line and f'span_id="{span_id}"' in line for line in exemplars
    )
    assert resp.text.rstrip().endswith("# EOF")


def test_span_ends_with_the_response_not_after_background_tasks(tel: TestTelemetry) -> None:
    import time

    app = FastAPI()

    def slow_job() -> None:
        time.sleep(0.3)

    def failing_job() -> None:
        raise ValueError("job failed")

    @app.post("/orders")
    async def order(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(slow_job)
        return {"queued": True}

    @app.post("/fragile")
    async def fragile(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(failing_job)
        return {"queued": True}

    c = client(tel, app)
    assert c.post("/orders").status_code == 200
    assert c.post("/fragile").status_code == 200
    spans = server_spans(tel)
    assert [s.name for s in spans] == ["POST /orders", "POST /fragile"]
    assert (spans[0].end_time - spans[0].start_time) / 1e9 < 0.25
    assert spans[1].status.status_code is StatusCode.UNSET  # the client got its 200
    labels = {"http_route": "/fragile", "error_type": "ValueError"}
    assert tel.sample("http_server_exceptions_total", labels) == 1
    assert tel.sample("http_server_active_requests", {"http_request_method": "POST"}) == 0


def _put_with_body_after(app: Any, delay_s: float) -> None:
    """One ASGI PUT whose body arrives ``delay_s`` after its headers (a slow client)."""
    import asyncio
    import json

    body = json.dumps({"name": "x"}).encode()
    sent: list[dict[str, Any]] = []

    async def main() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "PUT",
            "scheme": "http",
            "path": "/items/7",
            "raw_path": b"/items/7",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
            "client": ("127.0.0.1", 5000),
            "server": ("testserver", 80),
        }
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if delivered:
                await asyncio.sleep(3600)  # a client that keeps the connection open
            delivered = True
            await asyncio.sleep(delay_s)
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)

    asyncio.run(main())
    assert sent[0]["status"] == 200


def _body_app() -> FastAPI:
    app = FastAPI()

    @app.put("/items/{item_id}")
    async def put(item_id: int, body: dict[str, str]) -> dict[str, Any]:
        return {"id": item_id, **body}

    return app


def test_a_body_that_comes_late_is_a_child_span_not_the_handlers_own_time(
    tel: TestTelemetry,
) -> None:
    app = _body_app()
    tel.telemetry.instrument(app)
    _put_with_body_after(app, 0.05)
    [server] = server_spans(tel)
    [wait] = [s for s in tel.spans() if s.name == "http receive"]
    assert wait.kind is SpanKind.INTERNAL
    assert wait.parent is not None
    assert wait.parent.span_id == server.context.span_id
    assert (wait.end_time - wait.start_time) / 1e6 >= 45
    assert server.start_time <= wait.start_time <= wait.end_time <= server.end_time


def test_a_body_that_came_with_the_headers_adds_no_span(tel: TestTelemetry) -> None:
    app = _body_app()
    tel.telemetry.instrument(app)
    _put_with_body_after(app, 0.0)
    assert [s.name for s in tel.spans()] == ["PUT /items/{item_id}"]
