"""`narrows up --load`: the collector scrapes the demo's /metrics, so its request-duration
samples and their exemplars are queryable, and an exemplar leads to a stored trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.procs import wait_for
from tests.support.stack import narrows_up, wait_trace

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FAMILY = "http_server_request_duration_seconds"


def test_narrows_up_scrapes_the_demo_request_durations_with_exemplars(tmp_path: Path) -> None:
    with narrows_up(tmp_path / "data", "--load") as stack:
        query = stack.endpoints["query"]
        got: dict[str, Any] = {}

        def samples() -> bool:
            r = httpx.get(
                f"{query}/api/narrows/metrics/series",
                params={"name": f"{FAMILY}_count", "fn": "raw"},
                timeout=5,
            )
            got["series"] = r.json().get("series", []) if r.status_code == 200 else []
            return any(p[1] > 0 for s in got["series"] for p in s["points"])

        def exemplars() -> bool:
            r = httpx.get(
                f"{query}/api/narrows/exemplars", params={"name": FAMILY, "limit": 50}, timeout=5
            )
            got["exemplars"] = r.json().get("exemplars", []) if r.status_code == 200 else []
            return bool(got["exemplars"])

        # The collector scrapes every 15 s; the load starts with the stack.
        wait_for(samples, 60, f"{FAMILY}_count samples from the demo")
        labels = got["series"][0]["labels"]
        assert labels["job"] == "scrape"
        assert labels["instance"] == stack.endpoints["demo"].removeprefix("http://")
        assert any("http_route" in s["labels"] for s in got["series"])

        wait_for(exemplars, 60, f"exemplars of {FAMILY}")
        ex = got["exemplars"][0]
        assert ex["name"] == f"{FAMILY}_bucket"
        assert "le" in ex["labels"]
        assert len(ex["traceId"]) == 32
        assert int(ex["traceId"], 16) > 0
        assert ex["value"] >= 0
        # The exemplar is the way from a slow bucket to its trace.
        trace = wait_trace(query, ex["traceId"], timeout=20)
        assert trace["result"]["resourceSpans"]  # type: ignore[index]
