"""Django: ``instrument(get_wsgi_application())`` or the ASGI handler; route templates."""

from __future__ import annotations

import asyncio
from typing import Any

import django
import httpx
import pytest
from django.conf import settings
from opentelemetry.trace import StatusCode
from werkzeug.test import Client

from instrumentation.testing import TestTelemetry
from tests.unit.instrumentation.conftest import server_spans


def _item(request: Any, item_id: int) -> Any:
    from django.http import JsonResponse

    return JsonResponse({"id": item_id})


def _boom(request: Any) -> Any:
    raise RuntimeError("kaput")


urlpatterns: list[Any] = []


@pytest.fixture(scope="module", autouse=True)
def django_settings() -> None:
    from django.urls import path

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="unit-tests-only",
            ROOT_URLCONF=__name__,
            ALLOWED_HOSTS=["*"],
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            LOGGING_CONFIG=None,
        )
        django.setup()
    urlpatterns[:] = [
        path("items/<int:item_id>", _item),
        path("boom", _boom),
    ]


def test_wsgi_handler_span_uses_the_route_template(tel: TestTelemetry) -> None:
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    tel.telemetry.instrument(application)
    resp = Client(application).get("/items/5", headers={"Host": "example.test:8080"})
    assert resp.status_code == 200
    (span,) = server_spans(tel)
    assert span.name == "GET /items/<int:item_id>"
    assert span.attributes["http.route"] == "/items/<int:item_id>"
    assert span.attributes["server.address"] == "example.test"
    assert span.attributes["server.port"] == 8080
    labels = {
        "http_request_method": "GET",
        "http_route": "/items/<int:item_id>",
        "http_response_status_code": "200",
    }
    assert tel.sample("http_server_request_duration_seconds_count", labels) == 1


def test_wsgi_exception_becomes_500_and_is_recorded(tel: TestTelemetry) -> None:
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    tel.telemetry.instrument(application)
    assert Client(application).get("/boom").status_code == 500
    (span,) = server_spans(tel)
    assert span.name == "GET /boom"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "RuntimeError"


def test_asgi_handler_and_metrics_endpoint(tel: TestTelemetry) -> None:
    from django.core.asgi import get_asgi_application

    application = get_asgi_application()
    tel.telemetry.instrument(application)

    async def run() -> tuple[int, int, str]:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            ok = await c.get("/items/9")
            missing = await c.get("/nothing")
            metrics = await c.get("/metrics", headers={"accept": "text/plain"})
            return ok.status_code, missing.status_code, metrics.text

    ok, missing, text = asyncio.run(run())
    assert (ok, missing) == (200, 404)
    names = [s.name for s in server_spans(tel)]
    assert names == ["GET /items/<int:item_id>", "GET"]
    assert 'http_route="/items/<int:item_id>"' in text
