"""Degraded backends: nothing stored yet, or the collector down. Every page still renders,
with a note or a banner naming the URL, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.dashboard.conftest import page
from tests.support.stack import CollectorProc, collector_proc

pytestmark = pytest.mark.e2e
PAGES = [
    "overview", "latency", "traces", "logs", "service_map", "shards", "bottlenecks", "capacity",
]  # fmt: skip


@pytest.fixture(scope="module")
def empty_collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProc]:
    data = tmp_path_factory.mktemp("empty") / "data"
    data.mkdir()
    with collector_proc(data) as col:
        yield col


@pytest.mark.parametrize("name", PAGES)
def test_an_empty_store_renders_every_page_without_errors(
    name: str, empty_collector: CollectorProc, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = page(name, empty_collector.query_url, monkeypatch).run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value


@pytest.mark.parametrize("name", PAGES)
def test_collector_down_shows_a_banner_naming_the_url(
    name: str, monkeypatch: pytest.MonkeyPatch, free_port: int
) -> None:
    url = f"http://127.0.0.1:{free_port}"
    at = page(name, url, monkeypatch).run()
    assert not at.exception
    assert any(url in e.value and "unreachable" in e.value for e in at.error)
