"""Scenario 7, cardinality attack through the instrumentation: 100,000 distinct attribute
values on spans and as metric labels (shard ids, operation names, cache names — what a
careless caller or an attacker-controlled value would put there).

Holds: each metric keeps at most NARROWS_METRIC_CARDINALITY_LIMIT label sets, the rest is
counted in ``narrows_metric_overflow_total``; spans wait in a bounded queue (the exporter
here points at a port where nothing listens, the worst case) with the overflow counted in
``narrows_telemetry_dropped_total``; and the process's memory stops growing once the
limits are reached — measured with tracemalloc from the first quarter to the end: what
was allocated after the limits were reached and is still alive at the end. (Resident set
size was too noisy for this: malloc arenas and other threads of the test process moved it
by 10 MiB from one run to the next.) The span queue is kept small here so that the spans
it legitimately holds at the end (at most a queue and a batch) stay far below the bound.
"""

from __future__ import annotations

import gc
import json
import time
import tracemalloc

import pytest
from prometheus_client import CollectorRegistry

from instrumentation import cache_lookup, shard_span
from instrumentation.settings import InstrumentationSettings
from instrumentation.setup import build_telemetry, set_current
from narrows.ports import free_port

pytestmark = pytest.mark.integration
LIMIT = 2000
QUEUE = 256
BATCH = 64
GROWTH_BOUND_MIB = 4.0


def attack(values: int) -> dict[str, object]:
    settings = InstrumentationSettings.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",  # nobody there
            "OTEL_EXPORTER_OTLP_TIMEOUT": "500",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_BSP_MAX_QUEUE_SIZE": str(QUEUE),
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": str(BATCH),
            "OTEL_LOGS_EXPORTER": "none",
            "NARROWS_METRIC_CARDINALITY_LIMIT": str(LIMIT),
        },
        service_name="attack",
    )
    registry = CollectorRegistry()
    telemetry = build_telemetry(settings, registry=registry)
    previous = set_current(telemetry)
    checkpoint = values // 4
    started = time.perf_counter()
    tracing = False
    try:
        for i in range(values):
            value = f"user-{i:06d}-{'x' * 32}"
            with shard_span(value, f"db-{i}", operation=f"OP{i}", collection=value) as query:
                query.span.set_attribute("enduser.id", value)
            with cache_lookup(value) as lookup:
                lookup.hit = i % 2 == 0
            if i == checkpoint:
                gc.collect()
                tracemalloc.start()
                tracing = True
        gc.collect()
        alive, _peak = tracemalloc.get_traced_memory()
        growth = alive / 2**20
    finally:
        if tracing:
            tracemalloc.stop()
        set_current(previous)
        telemetry.shutdown(1.0)
    took = time.perf_counter() - started

    def sample(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    overflow = {
        metric: sample("narrows_metric_overflow_total", metric=metric)
        for metric in (
            "db_client_operation_duration_seconds",
            "app_shard_pool_wait_seconds",
            "app_cache_lookups_total",
        )
    }
    series = {
        metric.name: len(
            {
                tuple(sorted(s.labels.items()))
                for s in metric.samples
                if s.name.endswith(("_total", "_count"))
            }
        )
        for metric in registry.collect()
        if metric.name
        in (
            "app_cache_lookups",
            "app_shard_pool_wait_seconds",
            "db_client_operation_duration_seconds",
        )
    }
    dropped = sum(
        sample("narrows_telemetry_dropped_total", signal="traces", reason=reason)
        for reason in ("queue_full", "export_failed")
    )
    figures = {
        "scenario": 7,
        "values": values,
        "seconds": round(took, 1),
        "mib_alive_from_25pct_to_end": round(growth, 2),
        "overflow": overflow,
        "series": series,
        "spans_dropped": dropped,
    }
    print("FIGURES " + json.dumps(figures))
    for metric, folded in overflow.items():
        # the first LIMIT - 1 label sets are kept, the overflow series is the LIMIT-th
        assert folded == values - (LIMIT - 1), (metric, folded)
    assert all(count <= LIMIT for count in series.values()), series
    spans = 2 * values
    assert dropped >= spans - QUEUE - 2 * BATCH  # all but what fit in the queue and in flight
    assert growth < GROWTH_BOUND_MIB, f"{growth:.1f} MiB more alive after the limits were reached"
    return figures


def test_distinct_attribute_values_stay_bounded_and_are_counted() -> None:
    attack(10_000)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_a_hundred_thousand_distinct_values() -> None:
    attack(100_000)
