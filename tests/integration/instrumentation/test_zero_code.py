"""``opentelemetry-instrument`` with no code change gives the same spans as ``instrument(app)``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.instrumentation.conftest import (
    APP,
    AppStarter,
    attrs,
    get_trace,
    traceparent,
)
from tests.support.stack import CollectorProc

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Values that differ between two runs of the same request (ports, ids, timing).
VOLATILE = {"server.port", "client.address", "client.port"}
REQUESTS = [("/items/3", 200, 2), ("/items/999", 404, 2), ("/boom", 500, 1), ("/nowhere", 404, 1)]


def shape(spans: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[tuple[Any, ...]]:
    """What must match: name, kind, status, parent/child shape, attributes (minus volatile)."""
    ids = {s["spanId"]: s["name"] for _, s in spans}
    out = []
    for _, span in spans:
        a = {k: v for k, v in attrs(span).items() if k not in VOLATILE}
        out.append(
            (
                span["name"],
                span["kind"],
                span.get("status", {}).get("code", 0),
                ids.get(span.get("parentSpanId", ""), "<remote parent>"),
                tuple(sorted(a.items())),
                tuple(e["name"] for e in span.get("events", [])),
            )
        )
    return sorted(out)


def run_requests(url: str, prefix: str, col: CollectorProc) -> list[list[tuple[Any, ...]]]:
    shapes = []
    for i, (path, status, want) in enumerate(REQUESTS):
        trace_id, header = traceparent(i, prefix)
        resp = httpx.get(f"{url}{path}", headers={"traceparent": header}, timeout=5)
        assert resp.status_code == status
        shapes.append(shape(get_trace(col, trace_id, want=want)))
    return shapes


def test_zero_code_run_matches_instrument_app(
    collector: CollectorProc, start_app: AppStarter
) -> None:
    common = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_url, "OTEL_SERVICE_NAME": "shop"}
    _, coded = start_app("coded", {**common, "NARROWS_TEST_INSTRUMENT": "1"})
    instrument_cmd = str(Path(sys.executable).parent / "opentelemetry-instrument")
    zero_proc, zero = start_app(
        "zero-code",
        common,
        [instrument_cmd, sys.executable, "-m", "uvicorn", APP, "--log-level", "warning"],
    )
    with_code = run_requests(coded, "c0", collector)
    without_code = run_requests(zero, "d0", collector)
    assert without_code == with_code
    # and the shape is the one docs/telemetry.md promises
    item = dict((s[0], s) for s in with_code[0])
    assert set(item) == {"GET /items/{item_id}", "SELECT"}
    server_attrs = dict(item["GET /items/{item_id}"][4])
    assert server_attrs["http.route"] == "/items/{item_id}"
    assert server_attrs["http.response.status_code"] in (200, "200")
    db_attrs = dict(item["SELECT"][4])
    assert db_attrs.get("db.system.name", db_attrs.get("db.system")) == "sqlite"
    boom = with_code[2][0]
    assert boom[0] == "GET /boom"
    assert boom[2] == 2  # STATUS_CODE_ERROR
    assert "exception" in boom[5]
    assert "Configuration of narrows failed" not in zero_proc.log()
