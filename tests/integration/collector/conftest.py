"""Fixtures for the collector's integration tests: a live in-process collector, senders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.collector import LiveCollector, live_collector

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveCollector]:
    """A collector of this test's own (fresh data dir, free ports)."""
    with live_collector(tmp_path / "data", retention_ns=0, max_size=0) as c:
        yield c


@pytest.fixture(scope="module")
def shared_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCollector]:
    """One collector for a module of read-only conformance checks."""
    with live_collector(tmp_path_factory.mktemp("collector"), retention_ns=0, max_size=0) as c:
        yield c


def post_json(url: str, doc: Any) -> httpx.Response:
    return httpx.post(url, content=json.dumps(doc), headers=JSON, timeout=30)


def spans_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        sp
        for rs in result.get("resourceSpans", [])
        for ss in rs.get("scopeSpans", [])
        for sp in ss.get("spans", [])
    ]
