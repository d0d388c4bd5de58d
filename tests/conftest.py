"""Shared fixtures: free ports, temp data dirs, our processes, private servers, a browser.

Under ``CI=true`` a skipped test fails: CI must prove the integration tests ran.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from narrows.ports import free_port as _free_port
from tests.support.servers import (
    PostgresServer,
    PrometheusServer,
    RedisServer,
    find_program,
    postgres_server,
    redis_server,
)

REPO = Path(__file__).resolve().parent.parent


def _find_fixtures() -> Path:
    """The shared fixtures live beside the checkout (``../shared``); CI may clone elsewhere."""
    candidates = [
        os.environ.get("NARROWS_FIXTURES", ""),
        REPO.parent / "shared" / "fixtures",
        "/work/shared/fixtures",
    ]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return REPO.parent / "shared" / "fixtures"


FIXTURES = _find_fixtures()
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("NARROWS_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() == "true"


SOAK = os.environ.get("NARROWS_SOAK", "") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long reliability runs (``soak``) only under ``NARROWS_SOAK=1`` (``make soak``):
    deselected otherwise, not skipped, so CI (where a skip fails) runs the short forms."""
    if SOAK:
        return
    soak = [i for i in items if i.get_closest_marker("soak") is not None]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [i for i in items if i.get_closest_marker("soak") is None]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Streamlit's AppTest scans every installed distribution for components each time a new
    AppTest runs (over a second here, dozens of times a run). The installed packages cannot
    change during a run, so the dashboard tests scan once."""
    if "streamlit" not in sys.modules:
        return
    from streamlit.components.v2 import manifest_scanner

    scan = getattr(manifest_scanner, "scan_component_manifests", None)
    if scan is not None and not hasattr(scan, "cache_info"):
        manifest_scanner.scan_component_manifests = functools.cache(scan)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """In CI a skip is a failure, with the skip's reason as the message."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true (CI must run every test): {reason}"


def require_program(name: str) -> str:
    path = find_program(name)
    if path is None:
        pytest.skip(f"{name} is not installed (make test installs it with apt-get when it can)")
    return path


@pytest.fixture
def free_port() -> int:
    return _free_port()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"shared fixtures not found at {FIXTURES} (set NARROWS_FIXTURES)")
    return FIXTURES


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private Redis on a free port, owned by this test."""
    require_program("redis-server")
    with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One private PostgreSQL per session; tests create their own databases in it."""
    require_program("initdb")
    require_program("postgres")
    with postgres_server() as server:
        yield server


@pytest.fixture
def prometheus_bin() -> str:
    return require_program("prometheus")


@pytest.fixture
def prometheus_factory(tmp_path: Path, prometheus_bin: str):  # type: ignore[no-untyped-def]
    """Call with scrape targets (host:port) to get a private Prometheus; stopped after the test."""
    from contextlib import ExitStack

    from tests.support.servers import prometheus_server

    stack = ExitStack()

    def make(targets: list[str], **kwargs: object) -> PrometheusServer:
        n = len(list(tmp_path.glob("prometheus-*")))
        return stack.enter_context(
            prometheus_server(tmp_path / f"prometheus-{n}", targets, **kwargs)  # type: ignore[arg-type]
        )

    yield make
    stack.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Headless Debian Chromium driven by Playwright (never `playwright install`).

    Module-scoped: Playwright's sync API keeps an event loop running in the main thread,
    which would break later tests that call ``asyncio.run``.
    """
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.skip(f"chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    home = tmp_path_factory.mktemp("chromium-home")
    os.environ.setdefault("XDG_CONFIG_HOME", str(home / "config"))
    os.environ.setdefault("XDG_CACHE_HOME", str(home / "cache"))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
            ],
        )
        yield b
        b.close()
