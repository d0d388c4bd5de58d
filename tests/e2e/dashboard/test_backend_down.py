"""With the backend down, every page shows a banner naming its URL, never a traceback."""

from __future__ import annotations

import pytest

from tests.e2e.dashboard.conftest import page

pytestmark = pytest.mark.e2e
PAGES = ["overview", "latency", "traces", "logs", "shards", "bottlenecks", "capacity"]


@pytest.mark.parametrize("name", PAGES)
def test_collector_down_shows_a_banner_naming_the_url(
    name: str, monkeypatch: pytest.MonkeyPatch, free_port: int
) -> None:
    url = f"http://127.0.0.1:{free_port}"
    at = page(name, url, monkeypatch).run()
    assert not at.exception
    assert any(url in e.value and "unreachable" in e.value for e in at.error)
