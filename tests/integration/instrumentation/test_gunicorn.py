"""gunicorn with four UvicornWorkers: every worker exports, no span twice, metrics aggregated."""

from __future__ import annotations

import sys
import time
from pathlib import Path

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
CONF = "tests/integration/instrumentation/apps/gunicorn_conf.py"
REQUESTS = 40


@pytest.mark.parametrize("preload", [False, True], ids=["import-per-worker", "preload"])
def test_four_workers_export_every_request_once_and_share_metrics(
    collector: CollectorProc, start_app: AppStarter, tmp_path: Path, preload: bool
) -> None:
    """With --preload the app (and its telemetry) is set up in the master before fork: the
    workers must restart the export threads and not resend what the master queued."""
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    multiproc = tmp_path / "prom-multiproc"
    multiproc.mkdir()
    (multiproc / "counter_stale.db").write_bytes(b"left over from a previous run")
    startup = tmp_path / "startup-trace-id"
    proc, url = start_app(
        "gunicorn",
        {
            "NARROWS_TEST_INSTRUMENT": "1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_url,
            "OTEL_SERVICE_NAME": "shop",
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
            "NARROWS_TEST_STARTUP_SPAN": str(startup),
            # long enough that the import-time span is still queued when gunicorn forks
            "OTEL_BSP_SCHEDULE_DELAY": "1500",
        },
        [
            gunicorn,
            "-k",
            "uvicorn.workers.UvicornWorker",
            "-w",
            "4",
            "-c",
            CONF,
            *(["--preload"] if preload else []),
            "--bind",
            "127.0.0.1:{port}",
            APP,
        ],
    )
    trace_ids = []
    for i in range(REQUESTS):
        trace_id, header = traceparent(i, "9a")
        trace_ids.append(trace_id)
        # a new connection per request, so the kernel spreads them over the workers
        resp = httpx.get(f"{url}/items/{i % 50}", headers={"traceparent": header}, timeout=5)
        assert resp.status_code == 200

    instances = set()
    for trace_id in trace_ids:
        spans = get_trace(collector, trace_id, want=2)
        server = [(res, s) for res, s in spans if s["kind"] == 2]
        assert len(server) == 1, f"trace {trace_id} has {len(server)} server spans"
        instances.add(attrs(server[0][0])["service.instance.id"])
    if not preload:  # preloaded workers share the master's resource (README says so)
        assert len(instances) >= 2, "all requests were served by one worker"

    if preload:  # queued in the master before fork: sent once (by the master), not 1 + 4 times
        time.sleep(2)  # a worker that kept its inherited copy would have sent it by now
        assert len(get_trace(collector, startup.read_text(), want=1)) == 1

    text = httpx.get(f"{url}/metrics", timeout=5).text  # any worker answers for all
    count = next(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("http_server_request_duration_seconds_count")
        and 'http_route="/items/{item_id}"' in line
    )
    assert count == REQUESTS
    assert "Traceback" not in proc.log()
