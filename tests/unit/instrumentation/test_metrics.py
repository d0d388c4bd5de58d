"""Metrics: the cardinality guard, exemplars only for sampled requests, self-metrics."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.testclient import TestClient

from instrumentation.metrics import OVERFLOW, GuardedMetric, TelemetryMetrics
from instrumentation.testing import TestTelemetry, telemetry_for_tests


def test_guard_folds_label_sets_beyond_the_limit_into_one_overflow_series() -> None:
    registry = CollectorRegistry()
    overflow = Counter("narrows_metric_overflow", "", ["metric"], registry=registry)
    hist = Histogram("h_seconds", "", ["route"], registry=registry)
    guard = GuardedMetric(hist, "h_seconds", limit=5, overflow=overflow)
    for i in range(20):
        guard.labels(f"/r{i}").observe(0.1)
    guard.labels("/r0").observe(0.1)  # an existing series keeps counting
    kept = {
        s.labels["route"]
        for m in registry.collect()
        for s in m.samples
        if s.name == "h_seconds_count"
    }
    assert kept == {"/r0", "/r1", "/r2", "/r3", OVERFLOW}
    assert registry.get_sample_value("h_seconds_count", {"route": "/r0"}) == 2
    assert registry.get_sample_value("h_seconds_count", {"route": OVERFLOW}) == 16
    assert registry.get_sample_value("narrows_metric_overflow_total", {"metric": "h_seconds"}) == 16
    assert guard.series == 4


def test_request_metrics_respect_the_configured_limit() -> None:
    app = FastAPI()

    @app.api_route("/x", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def x() -> dict[str, bool]:
        return {"ok": True}

    with telemetry_for_tests({"NARROWS_METRIC_CARDINALITY_LIMIT": "3"}) as t:
        t.telemetry.instrument(app)
        c = TestClient(app)
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            c.request(method, "/x")
        overflow = {
            "http_request_method": OVERFLOW,
            "http_route": OVERFLOW,
            "http_response_status_code": OVERFLOW,
        }
        assert t.sample("http_server_request_duration_seconds_count", overflow) == 3
        folded = t.sample(
            "narrows_metric_overflow_total", {"metric": "http_server_request_duration_seconds"}
        )
        assert folded == 3


def test_unsampled_requests_carry_no_exemplar() -> None:
    app = FastAPI()

    @app.get("/x")
    async def x() -> dict[str, bool]:
        return {"ok": True}

    with telemetry_for_tests({"OTEL_TRACES_SAMPLER": "always_off"}) as t:
        t.telemetry.instrument(app)
        TestClient(app).get("/x")
        body, _ = t.scrape()
        assert "http_server_request_duration_seconds_bucket" in body
        assert "trace_id" not in body
        assert t.spans() == ()


def test_target_info_names_the_service_and_instance(tel: TestTelemetry) -> None:
    body, _ = tel.scrape("text/plain")
    line = next(x for x in body.splitlines() if x.startswith("target_info{"))
    assert 'service_name="unit"' in line
    assert "service_instance_id=" in line


def test_dropped_counter_is_labelled_by_signal_and_reason() -> None:
    metrics = TelemetryMetrics(
        CollectorRegistry(), cardinality_limit=10, service_name="s", instance_id="i"
    )
    metrics.count_dropped("traces", "queue_full", 3)
    metrics.count_dropped("traces", "queue_full", 2)
    metrics.count_dropped("logs", "export_failed", 1)
    sample = metrics.registry.get_sample_value
    assert (
        sample("narrows_telemetry_dropped_total", {"signal": "traces", "reason": "queue_full"}) == 5
    )
    assert (
        sample("narrows_telemetry_dropped_total", {"signal": "logs", "reason": "export_failed"})
        == 1
    )


def test_metrics_can_be_switched_off() -> None:
    with telemetry_for_tests({"OTEL_METRICS_EXPORTER": "none"}) as t:
        app = FastAPI()
        t.telemetry.instrument(app)
        assert t.telemetry.metrics is None
        assert TestClient(app).get("/metrics").status_code == 404
