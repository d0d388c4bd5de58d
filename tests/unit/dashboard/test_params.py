"""Query parameters are user-controlled strings: only exact, valid values get through."""

from __future__ import annotations

import pytest

from dashboard import params


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("0af7651916cd43dd8448eb211c80319c", "0af7651916cd43dd8448eb211c80319c"),
        (" 0AF7651916CD43DD8448EB211C80319C ", "0af7651916cd43dd8448eb211c80319c"),
        ("", None),
    ],
)
def test_valid_trace_ids_are_normalised(raw: str, value: str | None) -> None:
    assert params.trace_id({"trace_id": raw}) == (value, None)


@pytest.mark.parametrize(
    "raw",
    [
        "not-hex",
        "0af7651916cd43dd8448eb211c80319",  # 31 characters
        "0af7651916cd43dd8448eb211c80319c0",  # 33
        "0af7651916cd43dd8448eb211c80319g",
        "0af7651916cd43dd'; DROP TABLE x--",
        "0" * 32,
        "x" * 10_000,
    ],
)
def test_invalid_trace_ids_are_refused_with_a_short_message(raw: str) -> None:
    value, problem = params.trace_id({"trace_id": raw})
    assert value is None
    assert problem is not None
    assert len(problem) < 200


def test_span_ids_must_be_16_hex() -> None:
    assert params.span_id({"span_id": "b7ad6b7169203331"}) == ("b7ad6b7169203331", None)
    assert params.span_id({"span_id": "b7ad6b71692033"})[1] is not None


def test_choices_accept_only_listed_values() -> None:
    assert params.choice({"service": "demo"}, "service", ["demo"]) == ("demo", None)
    value, problem = params.choice({"service": 'evil"}'}, "service", ["demo"])
    assert value is None
    assert problem


def test_text_refuses_control_characters_and_long_values() -> None:
    assert params.text({"q": "timed out"}, "q") == ("timed out", None)
    assert params.text({"q": "a\nb"}, "q")[1]
    assert params.text({"q": "a" * 300}, "q", 256)[1]


@pytest.mark.parametrize("raw", ["nan", "inf", "-1", "1e99", "12ms"])
def test_numbers_must_be_finite_and_in_range(raw: str) -> None:
    assert params.number({"min_ms": raw}, "min_ms", 0, 1e7)[0] is None


def test_range_and_level_come_from_fixed_sets() -> None:
    assert params.range_minutes({"range": "1h"}) == (60, None)
    assert params.range_minutes({"range": "7d"})[1]
    assert params.level({"level": "warn"}) == ("warn", None)
    assert params.level({"level": "loud"})[1]
