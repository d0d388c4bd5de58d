"""Trace parsing keeps each span's resource: replicas of one service stay apart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dashboard.sources.model import parse_otlp_traces


def _resource_spans(instance: str, span_id: str) -> dict[str, Any]:
    return {
        "resource": {
            "attributes": [
                {"key": "service.name", "value": {"stringValue": "narrows-catalog"}},
                {"key": "service.instance.id", "value": {"stringValue": instance}},
                {"key": "process.pid", "value": {"intValue": "4242"}},
            ]
        },
        "scopeSpans": [
            {
                "spans": [
                    {
                        "traceId": "ab" * 16,
                        "spanId": span_id,
                        "name": "GET /items/{id}",
                        "kind": 2,
                        "startTimeUnixNano": "1000",
                        "endTimeUnixNano": "2000",
                    }
                ]
            }
        ],
    }


def test_each_span_carries_its_own_resource_and_instance() -> None:
    doc = {
        "resourceSpans": [
            _resource_spans("catalog-0", "00000000000000a0"),
            _resource_spans("catalog-2", "00000000000000a2"),
        ]
    }
    (trace,) = parse_otlp_traces(doc)
    by_id = {s.span_id: s for s in trace.spans}
    assert by_id["00000000000000a0"].instance == "catalog-0"
    assert by_id["00000000000000a2"].instance == "catalog-2"
    assert by_id["00000000000000a2"].resource["process.pid"] == 4242
    assert {s.service for s in trace.spans} == {"narrows-catalog"}


def test_a_span_without_an_instance_id_has_an_empty_instance(fixtures_dir: Path) -> None:
    doc = json.loads((fixtures_dir / "otlp/trace.json").read_text())
    (trace,) = parse_otlp_traces(doc)
    assert trace.spans[0].resource["service.name"] == "my.service"
    assert trace.spans[0].instance == ""
