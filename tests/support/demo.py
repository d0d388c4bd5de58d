"""Run the demo app for tests: in-process over ASGI, or served by uvicorn on a free port.

Also captures the spans the process emits (an in-memory exporter on the global provider),
so tests can check what the telemetry shows — and what it must not show.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from demo_app.main import create_app
from demo_app.service import DemoService
from demo_app.settings import DemoSettings
from instrumentation import configure
from narrows.ports import free_port

__all__ = ["DemoServer", "SpanCapture", "asgi_demo", "demo_server", "span_capture"]


@dataclass
class SpanCapture:
    exporter: InMemorySpanExporter

    def clear(self) -> None:
        self.exporter.clear()

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name.startswith(prefix)]


_capture: SpanCapture | None = None


def span_capture() -> SpanCapture:
    """One in-memory exporter on this process's tracer provider (set up once, no export)."""
    global _capture
    if _capture is None:
        # Client libraries stay uninstrumented in the test process: an instrumented httpx
        # would replace the explicit traceparent headers other tests send.
        telemetry = configure(
            service_name="narrows-demo-test",
            traces_exporter="none",
            logs_exporter="none",  # nothing listens on the default :4318 in tests
            disabled_instrumentations=("httpx", "requests"),
        )
        provider = telemetry.tracer_provider
        if not isinstance(provider, TracerProvider):
            raise RuntimeError("the OpenTelemetry SDK is disabled in this process")
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        _capture = SpanCapture(exporter)
    return _capture


@contextlib.asynccontextmanager
async def asgi_demo(settings: DemoSettings) -> AsyncIterator[tuple[httpx.AsyncClient, DemoService]]:
    """The app in this event loop (lifespan run by hand), with a client that needs no socket."""
    app = create_app(settings)
    service: DemoService = app.state.demo
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            yield client, service


@dataclass
class DemoServer:
    url: str
    app: FastAPI
    service: DemoService


@contextlib.contextmanager
def demo_server(settings: DemoSettings, timeout: float = 60.0) -> Iterator[DemoServer]:
    """uvicorn serving the app from a thread on a free port (in this process, so tests can
    read its spans and state); stopped at the end."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name=f"demo-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the demo server exited during start-up (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"the demo server did not start within {timeout:.0f}s")
        time.sleep(0.02)
    try:
        yield DemoServer(f"http://127.0.0.1:{port}", app, app.state.demo)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
