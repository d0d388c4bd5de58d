"""Fixtures for instrumentation unit tests: in-memory exporters and a fresh registry each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from instrumentation.testing import TestTelemetry, telemetry_for_tests


@pytest.fixture
def tel() -> Iterator[TestTelemetry]:
    """Telemetry with default settings (an empty environment), touching no global."""
    with telemetry_for_tests(service_name="unit") as t:
        yield t


def server_spans(t: TestTelemetry) -> list[object]:
    from opentelemetry.trace import SpanKind

    return [s for s in t.spans() if s.kind is SpanKind.SERVER]
