"""The real dashboard in headless Chromium on one `narrows up --load`: every page opens
without an error element, and each is screenshotted (test-artifacts/, and the main pages
into docs/screenshots/ for the README when NARROWS_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from dashboard.sources.narrows import NarrowsSource
from dashboard.sources.query import TimeWindow
from tests.e2e.dashboard.conftest import page, table
from tests.support.procs import wait_for
from tests.support.stack import UpStack, narrows_up, wait_trace

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


DEMO = "narrows-demo"
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


def _shows_slow_shard(page, artifacts_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """A visible card names shard 2 as a slow shard (not one folded away among the
    informational findings); on failure the message quotes what the page did show.

    The page may open on a diagnosis the overview computed a moment after the stack first
    had traffic (findings are cached for 30 s, as the page says); a reader reloads once
    that is past, and so does this test, up to twice."""
    card = page.get_by_text(re.compile(r"slow shard · app\.shard\.id=2")).filter(visible=True)
    for attempt in range(3):
        try:
            card.first.wait_for(timeout=20_000)
            return
        except Exception as exc:
            if attempt < 2:
                page.reload(wait_until="domcontentloaded")
                page.wait_for_function(_SETTLED, timeout=60_000)
                continue
            failed = artifacts_dir / "dashboard-bottlenecks-failed.png"
            page.screenshot(path=str(failed), full_page=True)
            shown = page.locator("[data-testid='stMain']").inner_text()[:3000]
            raise AssertionError(
                f"no visible slow_shard card for shard 2; the page showed:\n{shown}"
            ) from exc


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
            _shows_slow_shard(page, artifacts_dir)
        if path == "logs":  # the demo's own lines, shipped over OTLP
            shown = page.get_by_text(re.compile(r"^\d+ newest lines")).first.inner_text()
            assert int(shown.split()[0]) > 0, shown
        if path == "shards":  # pool wait from the scraped histogram, not estimated
            assert page.get_by_text("estimated from").count() == 0
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
        page.get_by_text("Logs of this trace").wait_for(timeout=30_000)
        assert page.get_by_text("No logs carry this trace id.").count() == 0
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


def _demo_trace_with_logs(query_url: str) -> str:
    """A demo request's trace that has logs, stored by now: the oldest of the 50 newest lines
    (a line can arrive before its trace's spans)."""
    logs = httpx.get(
        f"{query_url}/api/narrows/logs", params={"service": DEMO, "limit": 50}, timeout=5
    ).json()["logs"]
    trace_id = [r["traceId"] for r in logs if r.get("traceId")][-1]
    wait_trace(query_url, trace_id, timeout=10)
    return str(trace_id)


def test_logs_page_and_trace_view_show_the_demos_logs(
    stack: UpStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under `narrows up --load` the demo's access lines arrive as OTLP logs: the Logs page
    lists them with links to their traces, and a trace shows its lines inline."""
    query = stack.endpoints["query"]
    at = page("logs", query, monkeypatch).run()
    assert not at.exception
    logs = table(at, "message", "service", "trace")
    demo = logs[logs["service"] == DEMO]
    assert not demo.empty
    assert demo["trace"].str.fullmatch(r"traces\?trace_id=[0-9a-f]{32}").all()
    assert "http.request" in set(demo["message"])

    trace_id = _demo_trace_with_logs(query)
    at = page("traces", query, monkeypatch, trace_id=trace_id).run()
    assert not at.exception
    assert at.subheader[0].value == f"Trace {trace_id}", [w.value for w in at.warning]
    inline = table(at, "message", "level")
    assert "http.request" in set(inline["message"])


def test_shards_page_takes_pool_wait_from_the_scraped_metric(
    stack: UpStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector scrapes the demo's app_shard_pool_wait_seconds (`narrows up` passes
    --scrape): the page shows it for every shard, with no sampled-span estimate."""
    query = stack.endpoints["query"]
    window = TimeWindow.last(15)
    frame = NarrowsSource(query).shard_stats(window)
    assert frame.note is None  # the estimate from sampled spans says so in its note
    at = page("shards", query, monkeypatch).run()
    assert not at.exception
    assert not [c.value for c in at.caption if "estimated" in c.value]
    rows = table(at, "shard_id", "pool_wait_mean_ms").set_index("shard_id")
    assert sorted(rows.index) == ["0", "1", "2", "3"]
    assert rows["pool_wait_mean_ms"].notna().all(), rows
