"""Any app instrumented at the top level flushes at the end of its lifespan: uvicorn
re-raises SIGTERM after its graceful shutdown, so the process dies by the signal and an
atexit flush never runs — the middleware flushes before "shutdown complete" instead."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from tests.integration.instrumentation.conftest import AppStarter, get_trace, traceparent
from tests.support.stack import CollectorProc

pytestmark = pytest.mark.integration


def test_sigterm_under_uvicorn_sends_the_queued_spans(
    collector: CollectorProc, start_app: AppStarter
) -> None:
    proc, url = start_app(
        "shop",
        {
            "NARROWS_TEST_INSTRUMENT": "1",
            "OTEL_SERVICE_NAME": "shop",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_url,
            "OTEL_BSP_SCHEDULE_DELAY": "600000",  # nothing leaves on its own
            "OTEL_BLRP_SCHEDULE_DELAY": "600000",
        },
    )
    ids = []
    for i in range(20):
        trace_id, header = traceparent(i, "5f")
        assert (
            httpx.get(f"{url}/items/{i}", headers={"traceparent": header}, timeout=10).status_code
            == 200
        )
        ids.append(trace_id)
    started = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    code = proc.proc.wait(30)
    assert code in (0, -signal.SIGTERM)
    assert time.monotonic() - started < 5
    for trace_id in ids:
        get_trace(collector, trace_id, want=2, timeout=5)  # server span + its query
