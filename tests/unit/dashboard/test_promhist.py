"""Counter steps and histogram arithmetic for the Prometheus source."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from dashboard.sources.prometheus import counter_steps, quantile_from_buckets
from dashboard.sources.promhist import cache_frame, histogram_frame, red_frame
from dashboard.sources.query import TimeWindow

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW = TimeWindow(T0, T0 + timedelta(seconds=40), step_s=10)


def _series(labels: dict[str, str], values: list[tuple[float, float]]) -> dict[str, object]:
    base = T0.timestamp()
    return {"metric": labels, "values": [[base + t, str(v)] for t, v in values]}


def test_quantile_interpolates_like_histogram_quantile() -> None:
    upper = [0.1, 0.2, math.inf]
    assert quantile_from_buckets(upper, [10, 20, 20], 0.5) == pytest.approx(0.1)
    assert quantile_from_buckets(upper, [10, 20, 20], 0.75) == pytest.approx(0.15)
    assert quantile_from_buckets(upper, [0, 0, 4], 0.5) == pytest.approx(0.2)  # +Inf bucket
    assert math.isnan(quantile_from_buckets(upper, [0, 0, 0], 0.5))


def test_counter_steps_difference_at_step_boundaries_and_handle_resets() -> None:
    series = _series({"route": "/a"}, [(0, 5), (10, 8), (20, 8), (30, 2), (40, 4)])
    steps = counter_steps([series], WINDOW)
    assert list(steps["increase"]) == [3, 2, 2]  # 5→8, reset to 2 counts 2, 2→4
    assert [t.to_pydatetime() for t in steps["ts"]] == [
        T0,
        T0 + timedelta(seconds=20),
        T0 + timedelta(seconds=30),
    ]


def test_a_series_born_inside_the_window_counts_from_zero() -> None:
    steps = counter_steps([_series({}, [(20, 6), (30, 7)])], WINDOW)
    assert steps["increase"].sum() == 7


def test_red_frame_counts_errors_and_percentiles_per_group() -> None:
    def bucket(le: str, status: str, values: list[tuple[float, float]]) -> dict[str, object]:
        labels = {"le": le, "http_response_status_code": status, "http_route": "/a",
                  "http_request_method": "GET", "instance": "i"}  # fmt: skip
        return _series(labels, values)

    result = [
        bucket("0.1", "200", [(0, 0), (10, 8)]),
        bucket("+Inf", "200", [(0, 0), (10, 9)]),
        bucket("0.1", "500", [(0, 0), (10, 0)]),
        bucket("+Inf", "500", [(0, 0), (10, 1)]),
    ]
    sums = counter_steps(
        [
            _series(
                {"http_route": "/a", "http_request_method": "GET", "instance": "i"},
                [(0, 0), (10, 0.9)],
            )
        ],
        WINDOW,
    )
    red = red_frame(
        counter_steps(result, WINDOW),
        sums,
        ("http_request_method", "http_route"),
        10.0,
        10,
    )
    row = red.iloc[0]
    assert row["group"] == "GET /a"
    assert row["count"] == 10
    assert row["errors"] == 1
    assert row["rate"] == pytest.approx(1.0)
    assert row["mean_ms"] == pytest.approx(90.0)
    assert row["p50_ms"] == pytest.approx(62.5)


def test_histogram_frame_turns_cumulative_buckets_into_counts() -> None:
    result = [
        _series({"le": "0.005"}, [(0, 0), (10, 2)]),
        _series({"le": "0.01"}, [(0, 0), (10, 5)]),
        _series({"le": "+Inf"}, [(0, 0), (10, 6)]),
    ]
    bounds, frame = histogram_frame(counter_steps(result, WINDOW), over_time=False)
    assert bounds == (5.0, 10.0)
    assert list(frame["count"]) == [2, 3, 1]
    assert list(frame["high_ms"])[-1] == math.inf


def test_cache_frame_splits_results() -> None:
    result = [
        _series({"cache": "items", "result": "hit"}, [(0, 0), (10, 7)]),
        _series({"cache": "items", "result": "miss"}, [(0, 0), (10, 3)]),
    ]
    frame = cache_frame(counter_steps(result, WINDOW))
    assert frame[["hits", "misses", "errors"]].iloc[0].tolist() == [7, 3, 0]
