"""The app ``benchmarks/overhead.py`` serves four ways.

``python -m benchmarks._overhead_app VARIANT PORT``.

Two endpoints: ``/trivial`` returns a small JSON object; ``/work/{key}`` does about a
millisecond of real work, a dict-cache lookup plus a SQLite aggregate over a few
thousand rows (``cursor().execute()``, so the sqlite3 instrumentation sees it).

Variants:
- ``bare``: no telemetry.
- ``stock``: what a user assembles by hand today from contrib parts: ``FastAPIInstrumentor``
  with its defaults, the OTLP/HTTP exporter behind a ``BatchSpanProcessor``, a
  prometheus-client histogram in an ``@app.middleware("http")`` (the FastAPI docs' way),
  and one structlog JSON line per request.
- ``narrows``: ``instrument(app)``, all signals, 100 % sampling, exporters pointed at
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the orchestrator's null sink, or a closed port for
  the "exporter down" variant).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROWS = int(os.environ.get("BENCH_SQLITE_ROWS", "36000"))


def _database() -> Path:
    path = Path(tempfile.mkdtemp(prefix="narrows-bench-")) / "items.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, grp INTEGER, v REAL)")
    conn.executemany(
        "INSERT INTO items (grp, v) VALUES (?, ?)", ((i % 50, i * 0.5) for i in range(ROWS))
    )
    conn.commit()
    conn.close()
    return path


def build(variant: str) -> Any:
    from fastapi import FastAPI

    app = FastAPI()
    db_path = _database()
    state: dict[str, Any] = {}
    cache = {str(k): {"key": k, "name": f"item-{k}"} for k in range(1000)}

    @app.get("/trivial")
    async def trivial() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/work/{key}")
    async def work(key: str) -> dict[str, Any]:
        item = cache.get(key) or {"key": key}
        cur = state["conn"].cursor()
        cur.execute("SELECT count(*), avg(v) FROM items WHERE grp = ?", (len(key) % 50,))
        count, avg = cur.fetchone()
        return {"item": item, "count": count, "avg": avg}

    if variant == "stock":
        _stock(app)
    elif variant == "narrows":
        from instrumentation import instrument

        instrument(app, service_name="bench")
    elif variant != "bare":
        raise SystemExit(f"unknown variant {variant}")
    # After instrumenting, so the sqlite3 instrumentation (Narrows) wraps this connection.
    state["conn"] = sqlite3.connect(db_path, check_same_thread=False)
    return app


def _stock(app: Any) -> None:
    import structlog
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from prometheus_client import Histogram
    from starlette.requests import Request

    endpoint = os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger()
    duration = Histogram(
        "http_server_request_duration_seconds",
        "Duration of HTTP server requests.",
        ["http_request_method", "http_route", "http_response_status_code"],
    )

    @app.middleware("http")
    async def metrics(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        response = await call_next(request)
        elapsed = time.perf_counter() - started
        route = getattr(request.scope.get("route"), "path", "")
        duration.labels(request.method, route, str(response.status_code)).observe(elapsed)
        log.info("request", method=request.method, route=route, status=response.status_code)
        return response

    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)


def main(argv: list[str]) -> int:
    import uvicorn

    variant, port = argv[0], int(argv[1])
    app = build(variant)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        http="h11",
        loop="asyncio",
        lifespan="off",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
