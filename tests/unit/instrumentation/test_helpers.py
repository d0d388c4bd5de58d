"""shard_span and cache_lookup: spans with the contract's attributes, and their metrics."""

from __future__ import annotations

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from instrumentation import cache_lookup, shard_span
from instrumentation.testing import TestTelemetry


def test_shard_span_records_query_and_pool_wait(tel: TestTelemetry) -> None:
    with shard_span(2, "shard_2", system="postgresql", operation="SELECT", collection="items") as q:
        q.pool_wait_s = 0.004
    (span,) = tel.spans()
    assert span.name == "SELECT items"
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes) == {
        "db.system.name": "postgresql",
        "db.namespace": "shard_2",
        "db.operation.name": "SELECT",
        "db.collection.name": "items",
        "app.shard.id": "2",
        "app.pool.wait_ms": pytest.approx(4.0),
    }
    labels = {
        "db_system_name": "postgresql",
        "db_operation_name": "SELECT",
        "app_shard_id": "2",
        "error_type": "",
    }
    assert tel.sample("db_client_operation_duration_seconds_count", labels) == 1
    assert tel.sample("app_shard_pool_wait_seconds_sum", {"app_shard_id": "2"}) == pytest.approx(
        0.004
    )
    body, _ = tel.scrape()
    trace_id = format(span.context.trace_id, "032x")
    db_lines = [x for x in body.splitlines() if x.startswith("db_client_operation_duration")]
    assert any(trace_id in x for x in db_lines)


def test_shard_span_error_is_recorded_and_reraised(tel: TestTelemetry) -> None:
    with pytest.raises(TimeoutError), shard_span(1, "shard_1"):
        raise TimeoutError("pool exhausted")
    (span,) = tel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "TimeoutError"
    assert any(e.name == "exception" for e in span.events)


def _db_count(tel: TestTelemetry, shard: str, error_type: str) -> float | None:
    labels = {
        "db_system_name": "sqlite",
        "db_operation_name": "SELECT",
        "app_shard_id": shard,
        "error_type": error_type,
    }
    return tel.sample("db_client_operation_duration_seconds_count", labels)


def test_a_failed_shard_query_labels_its_duration_with_the_error_type(tel: TestTelemetry) -> None:
    """Errors per shard come from the app's own histogram: ``error_type`` is the exception's
    class on failure and empty on success (one series each)."""
    with shard_span(1, "shard_1"):
        pass
    with pytest.raises(TimeoutError), shard_span(1, "shard_1"):
        raise TimeoutError("pool exhausted")
    assert _db_count(tel, "1", "") == 1
    assert _db_count(tel, "1", "TimeoutError") == 1
    body, _ = tel.scrape()
    assert 'error_type="TimeoutError"' in body
    assert tel.sample("app_shard_pool_wait_seconds_count", {"app_shard_id": "1"}) == 2


def test_a_cancelled_shard_query_is_not_an_error(tel: TestTelemetry) -> None:
    """A sibling cancelled because another shard failed: neither the span nor the metric
    counts it as a failure (the SDK leaves the status unset for a BaseException)."""
    import asyncio

    with pytest.raises(asyncio.CancelledError), shard_span(3, "shard_3"):
        raise asyncio.CancelledError
    (span,) = tel.spans()
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in span.attributes
    assert _db_count(tel, "3", "") == 1


def test_error_types_past_the_cardinality_limit_fold_into_the_overflow_series() -> None:
    from instrumentation.metrics import OVERFLOW
    from instrumentation.testing import telemetry_for_tests

    with telemetry_for_tests(service_name="unit", cardinality_limit=3) as t:
        for name in ("E1", "E2", "E3", "E4"):
            error = type(name, (Exception,), {})
            with pytest.raises(error), shard_span(0, "shard_0"):
                raise error
        assert _db_count(t, "0", "E1") == 1
        assert _db_count(t, "0", "E2") == 1
        overflow = {
            "db_system_name": OVERFLOW,
            "db_operation_name": OVERFLOW,
            "app_shard_id": OVERFLOW,
            "error_type": OVERFLOW,
        }
        assert t.sample("db_client_operation_duration_seconds_count", overflow) == 2


def test_cache_lookup_counts_hits_and_misses(tel: TestTelemetry) -> None:
    for hit in (True, True, False):
        with cache_lookup("items") as lookup:
            lookup.hit = hit
    assert tel.sample("app_cache_lookups_total", {"cache": "items", "result": "hit"}) == 2
    assert tel.sample("app_cache_lookups_total", {"cache": "items", "result": "miss"}) == 1
    spans = tel.spans()
    assert [s.attributes["app.cache.hit"] for s in spans] == [True, True, False]
    assert spans[0].name == "cache.get items"
    assert spans[0].attributes["app.cache.name"] == "items"


def test_cache_error_counts_as_error_marks_the_span_and_reraises(tel: TestTelemetry) -> None:
    with pytest.raises(ConnectionError), cache_lookup("items", system="redis"):
        raise ConnectionError("redis down")
    (span,) = tel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ConnectionError"
    assert span.attributes["db.system.name"] == "redis"
    assert span.attributes["app.cache.hit"] is False
    assert [e.name for e in span.events] == ["exception"]
    assert tel.sample("app_cache_lookups_total", {"cache": "items", "result": "error"}) == 1
    assert tel.sample("app_cache_lookups_total", {"cache": "items", "result": "miss"}) is None


def test_helpers_work_before_configure() -> None:
    """No telemetry configured: the blocks run, nothing is recorded, nothing raises."""
    with shard_span(0, "shard_0") as q:
        q.pool_wait_s = 0.001
    with cache_lookup("items") as lookup:
        lookup.hit = True


def test_helper_spans_are_children_of_the_current_span(tel: TestTelemetry) -> None:
    with tel.telemetry.tracer().start_as_current_span("request") as parent:
        with cache_lookup("items"):
            pass
        with shard_span(3, "shard_3"):
            pass
    children = [s for s in tel.spans() if s.name != "request"]
    assert all(s.parent.span_id == parent.get_span_context().span_id for s in children)
