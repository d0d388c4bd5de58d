"""The real dashboard in headless Chromium on one `narrows up --load`: every page opens
without an error element, and each is screenshotted (test-artifacts/, and the main pages
into docs/screenshots/ for the README when NARROWS_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.procs import wait_for
from tests.support.stack import UpStack, narrows_up

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
SCREENSHOTS = REPO / "docs" / "screenshots"
#: Screenshots always land in test-artifacts/; the README's copies are refreshed only on
#: request (`NARROWS_UPDATE_SCREENSHOTS=1 make e2e`), so a test run never dirties the tree.
UPDATE_README_SCREENSHOTS = os.environ.get("NARROWS_UPDATE_SCREENSHOTS") == "1"


def _publish(artifact: Path, name: str) -> None:
    if UPDATE_README_SCREENSHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(artifact, SCREENSHOTS / name)


#: url path → (a text the page shows when it has rendered, copied to docs/screenshots/)
PAGES = {
    "": ("Overview", True),
    "latency": ("Latency", True),
    "traces": ("Traces", False),
    "logs": ("Logs", False),
    "shards": ("Shards & cache", True),
    "bottlenecks": ("Bottlenecks", True),
    "capacity": ("Capacity", False),
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    """One `narrows up --load` for the whole module, with ~20 s of traffic recorded (so the
    screenshots show time series, not a single point) and shard 2 slowed down (so the
    Bottlenecks page has something to explain)."""
    data = tmp_path_factory.mktemp("up") / "data"
    with narrows_up(data, "--load", "--fault", "slow_shard:shard=2,delay_ms=40") as up:
        query = up.endpoints["query"]

        def has_traffic() -> bool:
            r = httpx.get(f"{query}/api/v3/services", timeout=2)
            if not r.json().get("services"):
                return False
            stats = httpx.get(f"{query}/api/narrows/stats", timeout=2).json()
            return int((stats.get("spans") or {}).get("count") or 0) >= 600

        wait_for(has_traffic, 90, "load to produce traces (about 20 s of it)")
        yield up


_SETTLED = """() => !document.querySelector(
    '[data-testid="stStatusWidget"], [data-testid="stSkeleton"], [data-testid="stAppSkeleton"]')"""


def _open(browser, url: str, title: str, scheme: str = "light"):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1400, "height": 1600}, color_scheme=scheme)
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("heading", name=title).first.wait_for(timeout=30_000)
    # Streamlit shows its status widget while the script runs and skeletons until an
    # element arrives; wait until both are gone (twice, as fragments render after the page).
    for _ in range(2):
        page.wait_for_timeout(1000)
        page.wait_for_function(_SETTLED, timeout=60_000)
    return page


def _no_errors(page) -> None:  # type: ignore[no-untyped-def]
    assert page.locator("[data-testid='stException']").count() == 0
    errors = page.locator("[data-testid='stAlertContentError']")
    assert errors.count() == 0, errors.all_inner_texts()


@pytest.mark.parametrize("path", list(PAGES))
def test_each_page_opens_without_errors(
    stack: UpStack,
    browser,  # type: ignore[no-untyped-def]
    artifacts_dir: Path,
    path: str,
) -> None:
    title, for_readme = PAGES[path]
    page = _open(browser, f"{stack.endpoints['dashboard']}/{path}", title)
    try:
        _no_errors(page)
        if path == "bottlenecks":  # the injected slow shard is the finding to act on
            page.get_by_text("app.shard.id=2").first.wait_for(timeout=30_000)
        name = f"dashboard-{path or 'overview'}.png"
        page.screenshot(path=str(artifacts_dir / name), full_page=True)
        if for_readme:
            _publish(artifacts_dir / name, name)
    finally:
        page.close()


def test_trace_page_shows_the_waterfall(
    stack: UpStack,
    browser,  # type: ignore[no-untyped-def]
    artifacts_dir: Path,
) -> None:
    query = stack.endpoints["query"]
    now = datetime.now(UTC)
    summaries = httpx.get(
        f"{query}/api/v3/trace-summaries",
        params={
            "query.startTimeMin": (now - timedelta(hours=1)).isoformat(),
            "query.startTimeMax": (now + timedelta(minutes=1)).isoformat(),
            "query.searchDepth": "20",
        },
        timeout=5,
    )
    best = max(summaries.json()["summaries"], key=lambda s: int(s["spanCount"]))
    trace_id = best["traceId"]
    page = _open(browser, f"{stack.endpoints['dashboard']}/traces?trace_id={trace_id}", "Traces")
    try:
        page.get_by_text(f"Trace {trace_id}").wait_for(timeout=30_000)
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
        _no_errors(page)
        page.screenshot(path=str(artifacts_dir / "dashboard-trace.png"), full_page=True)
        _publish(artifacts_dir / "dashboard-trace.png", "dashboard-trace.png")
    finally:
        page.close()


def test_dark_theme_renders_the_overview(
    stack: UpStack,
    browser,  # type: ignore[no-untyped-def]
    artifacts_dir: Path,
) -> None:
    """Streamlit follows the browser's dark preference; the charts use the theme's colours."""
    page = _open(browser, stack.endpoints["dashboard"], "Overview", scheme="dark")
    try:
        _no_errors(page)
        background = page.evaluate(
            "() => getComputedStyle(document.querySelector('.stApp')).backgroundColor"
        )
        red, green, blue = (
            int(v) for v in background[background.index("(") + 1 : -1].split(",")[:3]
        )
        assert red + green + blue < 150, background  # a dark background
        page.screenshot(path=str(artifacts_dir / "dashboard-overview-dark.png"), full_page=True)
        _publish(artifacts_dir / "dashboard-overview-dark.png", "dashboard-overview-dark.png")
    finally:
        page.close()
