"""`narrows capacity` without a demo: option parsing, the printed fit and plan, and sweeps
saved and read back (`--save`, `--from`) in the formats the dashboard also reads."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dashboard.analysis.capacity import usl
from dashboard.loaders import sweep_from_load_report
from demo_app.load_plan import KINDS, KeyChooser, RequestPlanner
from narrows.capacity import (
    ROUTES,
    CapacityError,
    parse_concurrency,
    parse_duration_ms,
    parse_routes,
)
from narrows.cli import main
from narrows.sweep_file import SweepFileError, read_sweep, write_sweep

STEPS = np.array([1, 2, 4, 8, 16, 32], dtype=float)


def sweep(lam: float = 100.0, sigma: float = 0.05, kappa: float = 0.001) -> pd.DataFrame:
    """A closed-loop sweep from known USL parameters, ±2 % alternating noise; mean latency by
    Little's law, p99 a multiple of it."""
    x = usl(STEPS, lam, sigma, kappa) * (1 + 0.02 * (-1) ** np.arange(len(STEPS)))
    mean_ms = 1000 * STEPS / x
    return pd.DataFrame(
        {
            "concurrency": STEPS,
            "throughput_rps": x,
            "p50_ms": mean_ms * 0.9,
            "p95_ms": mean_ms * 2,
            "p99_ms": mean_ms * 3,
            "mean_ms": mean_ms,
            "error_rate": 0.0,
        }
    )


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.csv"
    write_sweep(path, sweep())
    return path


def capacity(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["capacity", *args])
    out, err = capsys.readouterr()
    return code, out, err


# --- options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"), [("200ms", 200.0), ("0.2s", 200.0), ("200", 200.0), (" 1.5 s ", 1500.0)]
)
def test_slo_durations_read_in_milliseconds_or_seconds(text: str, ms: float) -> None:
    assert parse_duration_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["fast", "0ms", "-5ms", "200us", "", "2h"])
def test_a_bad_slo_duration_is_a_clear_error(text: str) -> None:
    with pytest.raises(CapacityError, match="--slo-p99"):
        parse_duration_ms(text)


def test_concurrency_steps_parse_and_need_three_distinct_values() -> None:
    assert parse_concurrency("1,2, 4,8") == (1, 2, 4, 8)
    with pytest.raises(CapacityError, match="at least 3 different steps"):
        parse_concurrency("4,4,8")
    with pytest.raises(CapacityError, match="1 … 10000"):
        parse_concurrency("0,1,2")
    with pytest.raises(CapacityError, match="whole numbers"):
        parse_concurrency("1,2,x")


def test_routes_are_named_by_kind_by_method_and_template_or_by_an_unambiguous_template() -> None:
    assert parse_routes(["get"]) == {"get": 1.0}
    assert parse_routes(["GET /items/{item_id}", "search"]) == {"get": 1.0, "search": 1.0}
    assert parse_routes(["post  /orders"]) == {"checkout": 1.0}
    assert parse_routes(["/search"]) == {"search": 1.0}
    with pytest.raises(CapacityError, match="not a demo route; routes: get"):
        parse_routes(["/items/{item_id}"])  # GET and PUT: ambiguous
    with pytest.raises(CapacityError, match="not a demo route"):
        parse_routes(["GET /nope"])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_route_names_match_what_the_load_generator_sends(kind: str) -> None:
    import random

    rng = random.Random(1)
    planned = RequestPlanner({kind: 1.0}, KeyChooser(100, None, rng), rng).plan()
    assert ROUTES[kind] == f"{planned.method} {planned.template}"


# --- printing ------------------------------------------------------------------------------


def test_text_shows_the_steps_the_fit_with_its_error_and_the_plan(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = capacity(
        capsys, "--from", str(saved), "--target-rps", "500", "--slo-p99", "200ms"
    )
    assert code == 0, err
    assert f"sweep read from {saved} (6 steps)" in out
    table = out.split("\n\n")[1].splitlines()
    assert table[0].split() == [
        "N",
        "req/s",
        "err",
        "%",
        "p50",
        "ms",
        "p99",
        "ms",
        "X·R",
        "X·R",
        "/",
        "N",
    ]
    assert [line.split()[0] for line in table[1:7]] == ["1", "2", "4", "8", "16", "32"]
    # Little's law holds exactly on this sweep: X × mean latency = N.
    assert all(line.split()[-1] == "1.00" for line in table[1:7])
    for label in ("λ  one client", "σ  contention", "κ  coherency"):
        assert label in out
    assert "± " in out
    assert "fit error          R² 0." in out
    assert "mean error" in out
    assert "RMSE" in out
    assert "knee               N ≈ " in out
    assert "max throughput" in out
    assert "predicted; measured best" in out
    assert "within p99 ≤ 200 ms" in out
    assert "for 500 req/s" in out
    assert "× 0.8 headroom" in out


def test_json_is_the_only_thing_on_stdout_and_holds_the_fit_error_and_plan(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = capacity(
        capsys, "--from", str(saved), "--target-rps", "500", "--slo-p99", "0.2s", "--json"
    )
    assert code == 0
    doc = json.loads(out)
    usl_fit = doc["usl"]
    assert usl_fit["sigma"] == pytest.approx(0.05, abs=0.02)
    assert usl_fit["kappa"] == pytest.approx(0.001, abs=0.0005)
    assert usl_fit["r2"] > 0.95
    assert 0 <= usl_fit["mape"] < 0.05
    assert usl_fit["rmse_rps"] > 0
    assert usl_fit["points"] == 6
    peak = math.sqrt(0.95 / 0.001)
    true_max = float(usl(np.array([peak]), 100.0, 0.05, 0.001)[0])
    assert doc["max_throughput_rps"] == pytest.approx(true_max, rel=0.1)
    assert 1 <= doc["knee_concurrency"] <= doc["peak_concurrency"]
    assert doc["slo"]["p99_ms"] == 200.0
    assert doc["per_replica_rps"] == pytest.approx(doc["slo"]["throughput_rps"])
    assert doc["headroom"] == 0.8
    assert doc["replicas"] == math.ceil(500 / (doc["per_replica_rps"] * 0.8))
    assert [s["concurrency"] for s in doc["steps"]] == list(STEPS)
    assert all(s["littles_ratio"] == pytest.approx(1.0) for s in doc["steps"])


def test_headroom_changes_the_replica_count(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replicas = {}
    for headroom in ("1", "0.5"):
        code, out, _ = capacity(
            capsys, "--from", str(saved), "--target-rps", "1000", "--headroom", headroom, "--json"
        )
        assert code == 0
        doc = json.loads(out)
        replicas[headroom] = doc["replicas"]
        assert doc["replicas"] == math.ceil(1000 / (doc["max_throughput_rps"] * float(headroom)))
    assert replicas["0.5"] > replicas["1"]


def test_a_sweep_that_never_saturates_says_so_instead_of_inventing_a_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "linear.csv"
    linear = sweep(lam=50.0, sigma=0.0, kappa=0.0)
    linear["throughput_rps"] = 50.0 * linear["concurrency"]
    write_sweep(path, linear)
    code, out, _ = capacity(capsys, "--from", str(path), "--target-rps", "500", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["saturated"] is False
    # Replicas rest on what was measured (at least 1600 req/s each), not on the fit's
    # extrapolation far past the sweep.
    assert doc["per_replica_rps"] == pytest.approx(1600.0)
    assert doc["replicas"] == 1
    assert any("predicted maximum is an extrapolation" in n for n in doc["notes"])
    code, text, _ = capacity(capsys, "--from", str(path), "--target-rps", "5000")
    assert "an extrapolation, see notes" in text or "no limit in sight" in text
    assert "4 for 5000 req/s  (5000 / (1600.0 req/s measured × 0.8 headroom)" in text
    assert "sweep to a higher concurrency" in text


def test_a_poor_fit_is_reported_not_hidden(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = sweep()
    data["throughput_rps"] = data["throughput_rps"] * np.array([1.0, 1.6, 0.7, 1.5, 0.6, 1.4])
    path = tmp_path / "noisy.csv"
    write_sweep(path, data)
    code, out, _ = capacity(capsys, "--from", str(path))
    assert code == 0
    assert "the USL fits the sweep poorly" in out
    assert "Little's law is off at" in out


# --- saved sweeps --------------------------------------------------------------------------


def test_a_sweep_saved_as_json_reads_back_and_opens_in_the_dashboard(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    as_json = tmp_path / "sweep.json"
    code, first, _ = capacity(capsys, "--from", str(saved), "--save", str(as_json), "--json")
    assert code == 0
    code, again, _ = capacity(capsys, "--from", str(as_json), "--json")
    assert code == 0
    assert json.loads(again)["usl"] == json.loads(first)["usl"]
    # The dashboard's Capacity page reads the same file (a `narrows load --json` report).
    page = sweep_from_load_report(as_json.read_text())
    assert page["throughput_rps"].to_numpy() == pytest.approx(sweep()["throughput_rps"])


def test_capacity_json_output_is_itself_a_readable_sweep(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = capacity(capsys, "--from", str(saved), "--json")
    assert code == 0
    (tmp_path / "out.json").write_text(out)
    back = read_sweep(tmp_path / "out.json")
    assert back["p99_ms"].to_numpy() == pytest.approx(sweep()["p99_ms"])


def test_a_narrows_load_report_is_read_skipping_open_loop_steps(tmp_path: Path) -> None:
    def step(i: int, **extra: Any) -> dict[str, Any]:
        return {
            "step": i,
            "throughput_rps": 10.0 * i,
            "error_rate": 0.0,
            "latency_ms": {"p50": 5.0, "p95": 9.0, "p99": 12.0, "mean": 6.0, "max": 20.0},
            **extra,
        }

    report = {
        "mode": "closed",
        "steps": [step(1, concurrency=4), step(2, concurrency=1), step(3, rate=50.0)],
    }
    path = tmp_path / "load.json"
    path.write_text(json.dumps(report))
    frame = read_sweep(path)
    assert list(frame["concurrency"]) == [1.0, 4.0]  # sorted; the rate step skipped
    assert list(frame["mean_ms"]) == [6.0, 6.0]


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("concurrency,throughput_rps\n1,2\n", ".csv", "missing p50_ms, p95_ms, p99_ms"),
        (
            "concurrency,throughput_rps,p50_ms,p95_ms,p99_ms\n1,abc,1,2,3\n",
            ".csv",
            "line 2: throughput_rps must be a number, got 'abc'",
        ),
        (
            "concurrency,throughput_rps,p50_ms,p95_ms,p99_ms\n0,5,1,2,3\n",
            ".csv",
            "concurrency must be positive",
        ),
        (
            "concurrency,throughput_rps,p50_ms,p95_ms,p99_ms\n1,nan,1,2,3\n",
            ".csv",
            "must be a finite number",
        ),
        ("{not json", ".json", "is not valid JSON"),
        ("[1, 2]", ".json", "expected a JSON object"),
        ('{"steps": [{"concurrency": 1}]}', ".json", "step 1: missing throughput_rps"),
        ('{"steps": [{"rate": 5}]}', ".json", "no closed-loop steps"),
    ],
)
def test_a_broken_sweep_file_names_the_file_and_the_problem(
    tmp_path: Path, content: str, suffix: str, message: str
) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    with pytest.raises(SweepFileError, match="bad") as exc:
        read_sweep(path)
    assert message in str(exc.value)


# --- errors from the command line ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "{missing}"], "cannot read"),
        (["--from", "{two_steps}"], "needs at least 3 load steps"),
        (["--from", "{saved}", "--concurrency", "1,2,4"], "--concurrency only apply when"),
        (["--from", "{saved}", "--slo-p99", "soon"], "--slo-p99 must be a duration"),
        (["--from", "{saved}", "--headroom", "0"], "--headroom must be within (0, 1]"),
        (["--from", "{saved}", "--target-rps", "-5"], "--target-rps must be a positive rate"),
        (["--data-dir", "{empty}"], "no running `narrows up` found"),
        (["--demo-url", "http://x", "--concurrency", "1,1,1"], "at least 3 different steps"),
        (["--demo-url", "http://x", "--step-seconds", "0"], "--step-seconds must be above 0"),
        (["--demo-url", "http://x", "--route", "nope"], "not a demo route"),
        (["--demo-url", "http://x", "--warmup-seconds", "-1"], "--warmup-seconds must be 0"),
    ],
)
def test_wrong_input_is_one_line_and_exit_2(
    args: list[str],
    message: str,
    saved: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    two = tmp_path / "two.csv"
    write_sweep(two, sweep().head(2))
    (tmp_path / "empty").mkdir()
    paths = {
        "missing": tmp_path / "nope.csv",
        "two_steps": two,
        "saved": saved,
        "empty": tmp_path / "empty",
    }
    code, out, err = capacity(capsys, *(a.format(**paths) for a in args))
    assert code == 2
    assert out == ""
    assert message in err
    assert err.startswith("narrows capacity: ")
    assert len(err.strip().splitlines()) == 1
