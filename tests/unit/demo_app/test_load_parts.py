"""The load generator's parts: key choice, mix and key parsing, histograms, reports."""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter

import pytest

from demo_app import load_cli
from demo_app.load_plan import KeyChooser, parse_keys, parse_mix
from demo_app.load_stats import LatencyHistogram, LoadReport, StepStats, render_table


def test_uniform_keys_cover_the_range_evenly() -> None:
    chooser = KeyChooser(10, None, random.Random(1))
    counts = Counter(chooser.pick() for _ in range(20_000))
    assert set(counts) == set(range(1, 11))
    assert max(counts.values()) / min(counts.values()) < 1.15


def test_zipf_keys_favour_low_ranks_by_the_exponent() -> None:
    chooser = KeyChooser(1000, 1.2, random.Random(1))
    counts = Counter(chooser.pick() for _ in range(50_000))
    assert counts.most_common(1)[0][0] == 1
    # Zipf(1.2): P(1)/P(2) = 2**1.2 ≈ 2.3
    assert 2.0 < counts[1] / counts[2] < 2.6
    assert all(1 <= k <= 1000 for k in counts)


def test_hot_keys_take_their_share_of_traffic() -> None:
    chooser = KeyChooser(10_000, None, random.Random(1))
    chooser.hot_ids, chooser.hot_share = [7, 70, 700], 0.9
    picks = [chooser.pick() for _ in range(10_000)]
    share = sum(p in (7, 70, 700) for p in picks) / len(picks)
    assert 0.88 < share < 0.92


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("get", "KIND=WEIGHT"),
        ("fetch=1", "KIND=WEIGHT"),
        ("get=x", "must be a number"),
        ("get=-1", "≥ 0"),
        ("get=0,put=0", "positive"),
    ],
)
def test_bad_mix_is_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_mix(text)


def test_mix_and_keys_parse() -> None:
    assert parse_mix("get=3, search=1") == {"get": 3.0, "search": 1.0}
    assert parse_keys("uniform") is None
    assert parse_keys("zipf:1.2") == 1.2
    for bad in ("zipf", "zipf:0", "zipf:x", "pareto:1"):
        with pytest.raises(ValueError, match="--keys"):
            parse_keys(bad)


def test_histogram_percentiles_are_within_one_percent_of_exact() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(-4, 1) for _ in range(20_000)]
    hist = LatencyHistogram()
    for v in values:
        hist.record(v)
    ordered = sorted(values)
    for q in (0.5, 0.95, 0.99):
        exact = ordered[int(q * len(ordered)) - 1]
        assert hist.percentile(q) == pytest.approx(exact, rel=0.012)
    assert hist.count == len(values)
    assert hist.max_s == max(values)
    assert LatencyHistogram().percentile(0.5) == 0.0


def test_step_results_count_requests_per_shard_touched_and_endpoint() -> None:
    step = StepStats(1, concurrency=4, elapsed_s=2.0)
    step.record("get", [2], 0.010, 200)
    step.record("multiget", [0, 2], 0.020, 200)
    step.record("get", [1], 0.030, 503)
    step.record("get", [1], 0.030, None)
    step.record("put", [3], 0.005, 422)
    doc = step.to_dict()
    assert doc["concurrency"] == 4
    assert doc["requests"] == 5
    assert doc["throughput_rps"] == 2.5
    assert doc["errors"] == 2
    assert doc["client_errors"] == 1
    assert doc["by_shard"]["2"]["requests"] == 2
    assert doc["by_shard"]["1"]["error_rate"] == 1.0
    assert doc["by_endpoint"]["get"]["requests"] == 3
    assert doc["statuses"] == {"200": 2, "422": 1, "503": 1, "transport_error": 1}
    assert set(doc["latency_ms"]) == {"p50", "p95", "p99", "mean", "max"}

    report = LoadReport("http://x", "closed", "uniform", {"get": 1.0}, 4, [step])
    json.dumps(report.to_dict())
    table = render_table(report)
    assert "c=4" in table
    assert "by shard touched" in table
    assert "multiget" in table


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    load_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--concurrency", "1,x"], "--concurrency"),
        (["--concurrency", "0"], "positive"),
        (["--rate", "-5"], "positive"),
        (["--step-seconds", "0"], "--step-seconds"),
        (["--max-id", "0"], "--max-id"),
        (["--keys", "zipf:-1"], "--keys"),
        (["--mix", "nope=1"], "--mix"),
    ],
)
def test_bad_load_options_name_the_flag(argv: list[str], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        load_cli.config_from_args(_args(*argv))


def test_load_defaults_run_open_loop_for_thirty_seconds() -> None:
    config = load_cli.config_from_args(_args())
    assert config.mode == "open"
    assert config.duration_s == 30.0
    assert config.rates == ()
    closed = load_cli.config_from_args(_args("--concurrency", "1,2,4", "--step-seconds", "3"))
    assert closed.mode == "closed"
    assert closed.concurrency == (1, 2, 4)
    assert closed.duration_s == 0.0
    forever = load_cli.config_from_args(_args("--rate", "5", "--duration", "0"))
    assert forever.duration_s == 0.0
    assert forever.rates == (5.0,)
