"""Scenario 2, retry storm: the collector answers 503 to 30 % of ingest requests for a
period (``NARROWS_TEST_REFUSE_RATIO``, a test-only knob; half of the refused requests were
stored before the 503, as when an acknowledgement is lost). Senders are the official
OpenTelemetry OTLP/HTTP exporter with its own retry, behind the SDK's batch processor.
Every uniquely numbered span arrives, and the queries count each one once.

The exporter makes 6 attempts, 1 s apart (it honours the collector's ``Retry-After: 1``),
so a storm longer than ~5 s would make it give up on a batch now and then whatever the
collector does: the storm lasts 4 s. CI: 2 senders × 3,000 spans through one storm.
``make soak``: 4 senders × 15,000 spans over 60 s, a 4 s storm every 10 s.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.support.prom import metric_sum
from tests.support.stack import collector_proc

pytestmark = pytest.mark.integration

SERVICE = "storm"


def _send(otlp_url: str, sender: int, spans: int, seconds: float) -> None:
    """One official exporter behind a batch processor, ``spans`` numbered spans."""
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    # Retry-After: 1 from the collector; 6 attempts fit in the timeout, so a batch outlives
    # a storm of up to ~5 s even if every attempt inside it is refused.
    exporter = OTLPSpanExporter(endpoint=otlp_url + "/v1/traces", timeout=60)
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter,
            max_queue_size=spans,  # the SDK drops spans when its queue is full
            max_export_batch_size=100,
            schedule_delay_millis=50,
        )
    )
    tracer = provider.get_tracer("storm")
    pause = seconds / spans
    for i in range(spans):
        with tracer.start_as_current_span(f"span-{sender}-{i:06d}", attributes={"seq": i}):
            pass
        if i % 100 == 99:
            time.sleep(100 * pause)
    assert provider.force_flush(180_000)
    provider.shutdown()


def retry_storm(
    data_dir: Path, senders: int, spans: int, seconds: float, every_s: float = 0
) -> dict[str, float]:
    env = {
        "NARROWS_TEST_REFUSE_RATIO": "0.3",
        "NARROWS_TEST_REFUSE_FOR": "4s",
        "NARROWS_TEST_REFUSE_EVERY": f"{every_s}s",
    }
    with collector_proc(data_dir, "--retention", "0", "--max-size", "0", env=env) as col:
        t0 = time.monotonic()
        threads = [
            threading.Thread(target=_send, args=(col.otlp_url, s, spans, seconds))
            for s in range(senders)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        elapsed = time.monotonic() - t0
        q = httpx.Client(base_url=col.query_url, timeout=30)
        stats = q.get("/api/narrows/stats").json()
        red = q.get("/api/narrows/red", params={"service": SERVICE}).json()
        names = {
            op["name"] for op in q.get("/api/v3/operations?service=" + SERVICE).json()["operations"]
        }
        metrics = q.get("/metrics").text
    expected = {f"span-{s}-{i:06d}" for s in range(senders) for i in range(spans)}
    missing = expected - names
    assert not missing, f"{len(missing)} spans never arrived, e.g. {sorted(missing)[:3]}"
    total = senders * spans
    refused = metric_sum(metrics, "narrows_test_refused_requests_total")
    stored_then_refused = metric_sum(
        metrics, "narrows_test_refused_requests_total", receiver="otlp", stored="true"
    )
    deduplicated = metric_sum(metrics, "narrows_receiver_deduplicated_requests_total")
    figures = {
        "spans": total,
        "stored": stats["spans"]["count"],
        "red_count": sum(s["count"] for s in red["series"]),
        "distinct_names": len(names),
        "refused_requests": refused,
        "stored_then_refused": stored_then_refused,
        "retries_deduplicated": deduplicated,
        "seconds": elapsed,
    }
    print("retry storm:", figures)
    assert figures["stored"] == total, f"stored {figures['stored']} of {total}: {figures}"
    assert figures["red_count"] == total, figures
    assert len(names) == total
    assert not (names - expected)
    assert refused >= 3, f"the storm refused too little to prove anything: {figures}"
    # Every acknowledgement withheld after storing came back as a retry the collector
    # recognised (same body) and did not store again.
    assert deduplicated >= stored_then_refused >= 1, figures
    assert re.search(
        r'narrows_test_refused_requests_total\{receiver="otlp",stored="false"\}', metrics
    )
    return figures


@pytest.mark.slow
def test_every_span_survives_a_30_percent_503_storm_and_counts_once(data_dir: Path) -> None:
    retry_storm(data_dir, senders=2, spans=3_000, seconds=5)


@pytest.mark.soak
def test_every_span_survives_a_long_30_percent_503_storm_and_counts_once(data_dir: Path) -> None:
    seconds = float(os.environ.get("NARROWS_SOAK_SECONDS", "60"))
    retry_storm(data_dir, senders=4, spans=15_000, seconds=seconds, every_s=10)
