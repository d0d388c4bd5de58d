"""`narrows diagnose` without a stack: its options, its table, and its errors.

The real thing (a running `narrows up`, every demo fault) is tests/e2e/analysis/; here the
table is rendered from a synthetic diagnosis, and the errors come from the real CLI.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dashboard.analysis.inputs import inputs_from_traces, restrict_to_route
from narrows.diagnose import format_table, parse_since, parse_until
from tests.support.synthetic import Fault, Scenario, generate
from tests.unit.analysis.helpers import run_scenario


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "narrows", "diagnose", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30.0), ("10m", 600.0), ("1.5h", 5400.0), ("1d", 86400.0)]
)
def test_since_takes_a_duration_with_a_unit(text: str, seconds: float) -> None:
    assert parse_since(text) == seconds


@pytest.mark.parametrize("text", ["10", "ten minutes", "-5m", "1s", "8d", "5 weeks"])
def test_since_rejects_what_it_cannot_read_or_bound(text: str) -> None:
    with pytest.raises(ValueError, match="--since"):
        parse_since(text)


NOW = datetime(2026, 11, 26, 3, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, NOW),
        ("now", NOW),
        ("2026-11-26T03:10:00Z", datetime(2026, 11, 26, 3, 10, tzinfo=UTC)),
        ("2026-11-26T03:10:00", datetime(2026, 11, 26, 3, 10, tzinfo=UTC)),  # naive = UTC
        ("2026-11-26T04:10:00+01:00", datetime(2026, 11, 26, 3, 10, tzinfo=UTC)),
        ("1795663800", datetime(2026, 11, 26, 3, 30, tzinfo=UTC)),
        ("1795663799.5", datetime(2026, 11, 26, 3, 29, 59, 500000, tzinfo=UTC)),
    ],
)
def test_until_takes_an_iso_time_or_unix_seconds(text: str | None, expected: datetime) -> None:
    assert parse_until(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "03:10", "2026-13-01T00:00:00Z", "2027-01-01Z"])
def test_until_rejects_what_it_cannot_read_or_what_has_not_happened(text: str) -> None:
    with pytest.raises(ValueError, match="--until"):
        parse_until(text, now=NOW)


def test_until_ends_the_window_where_it_says() -> None:
    """The window is reported on stderr before the collector is asked (here a closed port)."""
    url = f"http://127.0.0.1:{_closed_port()}"
    result = _cli("--query-url", url, "--since", "1m", "--until", "2026-11-26T03:10:00Z")
    assert result.returncode == 1
    assert "analysing 03:09:01–03:10:01 UTC" in result.stderr


def test_the_table_puts_each_symptom_under_its_cause() -> None:
    report = run_scenario(Fault("slow_shard", {"shard": 1, "delay_ms": 60.0}), seed=5)
    inputs = inputs_from_traces(generate(Scenario(seed=5)))
    table = format_table(report, inputs, width=140)
    lines = table.splitlines()
    assert lines[0].split() == ["SEVERITY", "KIND", "SUBJECT", "IMPACT", "SUMMARY"]
    first = lines[1].split()
    assert first[1:3] == ["slow_shard", "app.shard.id=1"]
    # The slow shard's symptoms (its pool wait, …) follow it, marked as explained.
    cause = report.findings[0]
    symptoms = [f for f in report.findings if f.evidence.explained_by == cause.ref]
    assert symptoms
    marked = [line for line in lines if "└ " in line]
    assert len(marked) == len(symptoms)
    assert all(len(line) <= 140 for line in lines)
    assert "root cause" in table


def test_a_quiet_window_says_so() -> None:
    report = run_scenario(seed=101, rate_rps=100.0)
    inputs = inputs_from_traces(generate(Scenario(seed=101)))
    table = format_table(report, inputs)
    assert "nothing notable or critical" in table or "no findings" in table


def test_route_keeps_only_that_routes_requests() -> None:
    inputs = inputs_from_traces(generate(Scenario(seed=3)))
    only = restrict_to_route(inputs, "/search")
    assert only.traces
    assert {t.spans[0].trace_id for t in only.traces} <= {t.trace_id for t in inputs.traces}
    assert only.red is not None
    assert set(only.red["route"]) == {"GET /search"}
    assert restrict_to_route(inputs, "GET /search").red is not None
    with pytest.raises(ValueError, match=r"routes seen: .*GET /search"):
        restrict_to_route(inputs, "/nope")


def test_an_unreachable_collector_is_one_line_naming_its_url() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    result = _cli("--query-url", url, "--since", "1m", "--json")
    assert result.returncode == 1
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if "cannot read" in line]
    assert len(errors) == 1
    assert url in errors[0]
    assert "Traceback" not in result.stderr


def test_no_running_stack_says_how_to_start_one(tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if k != "NARROWS_QUERY_URL"}
    result = _cli("--data-dir", str(tmp_path), env=env)
    assert result.returncode == 2
    assert "endpoints.json" in result.stderr
    assert "make up" in result.stderr


def test_endpoints_json_names_the_collector_it_reads(tmp_path: Path) -> None:
    """Like `narrows fault`, it finds `narrows up` through endpoints.json (here a stale one,
    so the error names the URL it took from there)."""
    url = f"http://127.0.0.1:{_closed_port()}"
    (tmp_path / "endpoints.json").write_text(
        json.dumps({"demo": "", "otlp": "", "zipkin": "", "query": url, "dashboard": "", "pid": 1})
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "NARROWS_QUERY_URL"}
    result = _cli("--data-dir", str(tmp_path), "--since", "30s", env=env)
    assert result.returncode == 1
    assert url in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "forever"],
        ["--until", "tomorrow", "--query-url", "http://127.0.0.1:1"],
        ["--query-url", "ftp://x"],
        ["--source", "prometheus+jaeger+loki", "--prometheus-url", "localhost:9090"],
        ["--slo-availability", "1.5", "--query-url", "http://127.0.0.1:1"],
    ],
)
def test_bad_options_are_a_usage_error(args: list[str]) -> None:
    result = _cli(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("narrows diagnose: ")
    assert "Traceback" not in result.stderr


def test_info_findings_that_explain_no_alarm_are_counted_and_listed_on_request() -> None:
    report = run_scenario(seed=102, rate_rps=100.0)
    inputs = inputs_from_traces(generate(Scenario(seed=102)))
    assert report.findings
    assert not [f for f in report.findings if f.is_alarm]
    short = format_table(report, inputs, width=200)
    full = format_table(report, inputs, width=200, show_info=True)
    assert f"{len(report.findings)} info finding(s), --all lists them" in short
    assert "--all lists them" not in full
    assert full.splitlines()[0].split() == ["SEVERITY", "KIND", "SUBJECT", "IMPACT", "SUMMARY"]
