"""Framework detection, isolated library instrumentors, the zero-code distro, configure()."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from flask import Flask
from starlette.applications import Starlette

from instrumentation.distro import NarrowsDistro
from instrumentation.frameworks import detect
from instrumentation.libraries import Library, instrument_libraries
from instrumentation.testing import TestTelemetry


class BrokenInstrumentor:
    """Stands for a contrib instrumentor whose patching blows up (a version clash)."""

    is_instrumented_by_opentelemetry = False

    def instrument(self, **kwargs: Any) -> None:
        raise RuntimeError("incompatible library version")


class FineInstrumentor:
    is_instrumented_by_opentelemetry = False
    calls: list[dict[str, Any]] = []  # noqa: RUF012 - shared on purpose, reset per test

    def instrument(self, **kwargs: Any) -> None:
        FineInstrumentor.calls.append(kwargs)


def test_detects_each_framework_by_class() -> None:
    from django.core.handlers.wsgi import WSGIHandler

    assert detect(FastAPI()) == "starlette"
    assert detect(Starlette()) == "starlette"
    assert detect(Flask(__name__)) == "flask"
    assert detect(object.__new__(WSGIHandler)) == "django"
    assert detect(object()) is None


def test_unknown_app_gets_a_clear_type_error(tel: TestTelemetry) -> None:
    with pytest.raises(TypeError, match="supported: FastAPI/Starlette"):
        tel.telemetry.instrument(lambda environ, start_response: [])


def test_a_broken_library_instrumentor_is_skipped_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    FineInstrumentor.calls = []
    here = __name__
    libraries = [
        Library("broken", "json", f"{here}:BrokenInstrumentor"),
        Library("fine", "json", f"{here}:FineInstrumentor", {"flag": 1}),
        Library("absent", "no_such_library_xyz", f"{here}:FineInstrumentor"),
        Library("unimportable", "json", "no.such.module:Thing"),
        Library("off", "json", f"{here}:FineInstrumentor"),
    ]
    with caplog.at_level(logging.WARNING):
        outcome = instrument_libraries("provider", disabled=["off"], libraries=libraries)
    assert outcome["fine"] == "on"
    assert outcome["broken"].startswith("skipped: RuntimeError")
    assert outcome["absent"] == "skipped: not installed"
    assert outcome["unimportable"].startswith("skipped: ModuleNotFoundError")
    assert outcome["off"].startswith("skipped: disabled")
    assert FineInstrumentor.calls == [{"tracer_provider": "provider", "flag": 1}]
    assert "skipping the broken instrumentation" in caplog.text


@dataclass
class FakeEntryPoint:
    name: str
    target: Any

    def load(self) -> Any:
        return self.target


def test_distro_skips_contrib_server_instrumentors_and_isolates_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    FineInstrumentor.calls = []
    distro = NarrowsDistro()
    distro.load_instrumentor(FakeEntryPoint("fastapi", BrokenInstrumentor))  # skipped, not run
    distro.load_instrumentor(FakeEntryPoint("aiohttp-client", BrokenInstrumentor))  # fails: logged
    distro.load_instrumentor(FakeEntryPoint("celery", FineInstrumentor), skip_dep_check=True)
    assert FineInstrumentor.calls == [{"skip_dep_check": True}]
    assert "skipping the aiohttp-client instrumentation" in caplog.text
    assert "fastapi" not in caplog.text


def run_python(code: str, env: dict[str, str] | None = None) -> str:
    import os

    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            **(env or {}),
        },
    )
    assert proc.returncode == 0, proc.stderr
    # our prints, not the JSON log lines the configured logging writes to stdout
    return "\n".join(x for x in proc.stdout.splitlines() if not x.startswith("{"))


def test_configure_is_idempotent_and_sets_the_globals() -> None:
    out = run_python(
        """
        from opentelemetry import trace
        from instrumentation import configure, current
        a = configure(service_name="one")
        b = configure(service_name="two")  # reported, not applied
        print(a is b, current() is a, trace.get_tracer_provider() is a.tracer_provider)
        print(a.settings.service_name, sorted(k for k, v in a.libraries.items() if v == "on"))
        """
    )
    first, second = out.splitlines()
    assert first == "True True True"
    assert second.startswith("one ")
    assert "'sqlite3'" in second
    assert "'httpx'" in second
    assert "'logging'" in second


def test_sdk_disabled_turns_instrument_into_a_no_op() -> None:
    out = run_python(
        """
        from fastapi import FastAPI
        from starlette.testclient import TestClient
        from instrumentation import instrument
        app = FastAPI()
        @app.get("/x")
        async def x():
            return {"ok": True}
        t = instrument(app)
        r = TestClient(app).get("/metrics")
        print(t.enabled, t.tracer_provider, r.status_code)
        """,
        env={"OTEL_SDK_DISABLED": "true"},
    )
    assert out.split() == ["False", "None", "404"]


def test_fastapi_native_telemetry_is_off_so_each_request_has_one_span() -> None:
    """Recent FastAPI adds its own SERVER span and operation spans once a global provider exists."""
    out = run_python(
        """
        from fastapi import FastAPI
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from starlette.testclient import TestClient
        from instrumentation import instrument
        app = FastAPI()
        @app.get("/items/{i}")
        async def item(i: int):
            return {"i": i}
        t = instrument(app)
        exporter = InMemorySpanExporter()
        t.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        TestClient(app).get("/items/3")
        print([(s.name, s.instrumentation_scope.name) for s in exporter.get_finished_spans()])
        """
    )
    assert out.strip() == "[('GET /items/{i}', 'narrows.instrumentation.server')]"


def test_zero_code_hooks_instrument_apps_created_after_configuration() -> None:
    """What ``opentelemetry-instrument`` runs before the app is imported, for each framework."""
    out = run_python(
        """
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from instrumentation.distro import NarrowsConfigurator
        from instrumentation import current
        NarrowsConfigurator().configure()
        exporter = InMemorySpanExporter()
        current().tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))

        from flask import Flask  # imported after configuration, as in `flask run`
        flask_app = Flask("f")
        flask_app.add_url_rule("/f/<int:i>", "f", lambda i: {"i": i})
        flask_app.test_client().get("/f/1", buffered=True)

        from django.conf import settings
        settings.configure(ROOT_URLCONF="urls_for_test", ALLOWED_HOSTS=["*"], SECRET_KEY="x")
        import sys, types
        from django.urls import path
        from django.http import HttpResponse
        sys.modules["urls_for_test"] = types.SimpleNamespace(
            urlpatterns=[path("d/<int:i>", lambda r, i: HttpResponse("ok"))]
        )
        import django
        django.setup()
        from django.core.wsgi import get_wsgi_application
        from werkzeug.test import Client
        Client(get_wsgi_application()).get("/d/2")

        from fastapi import FastAPI
        from starlette.testclient import TestClient
        api = FastAPI()
        api.get("/a/{i}")(lambda i: {"i": i})
        TestClient(api).get("/a/3")
        print(sorted(s.name for s in exporter.get_finished_spans() if s.kind.name == "SERVER"))
        """
    )
    assert out.strip() == "['GET /a/{i}', 'GET /d/<int:i>', 'GET /f/<int:i>']"
