"""Strict reading of URL query parameters (user-controlled strings) into safe values.

Each reader returns ``(value, problem)``: the value is None when the parameter is absent
or invalid, and ``problem`` is a one-line message for the page to show. Nothing here
talks to Streamlit, so it is tested with plain dicts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from dashboard.sources.query import LEVELS, SPAN_ID, TRACE_ID

__all__ = [
    "RANGES",
    "choice",
    "level",
    "number",
    "range_minutes",
    "span_id",
    "text",
    "trace_id",
]

#: The time ranges the picker offers: URL value → minutes.
RANGES: dict[str, int] = {"5m": 5, "15m": 15, "1h": 60, "6h": 360, "24h": 1440}
#: Printable text without control characters; names of services, routes, attributes.
_TEXT = re.compile(r"^[^\x00-\x1f\x7f]*$")

Result = tuple[str | None, str | None]


def _shown(raw: str) -> str:
    return raw[:60] + ("…" if len(raw) > 60 else "")


def trace_id(params: Mapping[str, str], name: str = "trace_id") -> Result:
    raw = params.get(name, "").strip()
    if not raw:
        return None, None
    value = raw.lower()
    if not TRACE_ID.match(value):
        return None, f"“{_shown(raw)}” is not a trace id (expected 32 hexadecimal characters)."
    if value == "0" * 32:
        return None, "The all-zero trace id is invalid."
    return value, None


def span_id(params: Mapping[str, str], name: str = "span_id") -> Result:
    raw = params.get(name, "").strip()
    if not raw:
        return None, None
    value = raw.lower()
    if not SPAN_ID.match(value):
        return None, f"“{_shown(raw)}” is not a span id (expected 16 hexadecimal characters)."
    return value, None


def text(params: Mapping[str, str], name: str, max_len: int = 200) -> Result:
    raw = params.get(name, "")
    if not raw:
        return None, None
    if len(raw) > max_len or not _TEXT.match(raw):
        return None, f"The {name} parameter must be printable text of at most {max_len} characters."
    return raw, None


def choice(params: Mapping[str, str], name: str, allowed: Sequence[str]) -> Result:
    raw = params.get(name, "")
    if not raw:
        return None, None
    if raw not in allowed:
        return None, f"{name}=“{_shown(raw)}” is not one of the known values."
    return raw, None


def range_minutes(params: Mapping[str, str]) -> tuple[int | None, str | None]:
    value, problem = choice(params, "range", list(RANGES))
    return (RANGES[value] if value else None), problem


def level(params: Mapping[str, str]) -> Result:
    return choice(params, "level", LEVELS)


def number(
    params: Mapping[str, str], name: str, lo: float, hi: float
) -> tuple[float | None, str | None]:
    raw = params.get(name, "").strip()
    if not raw:
        return None, None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and lo <= value <= hi):
        return None, f"{name} must be a number within [{lo:g}, {hi:g}]."
    return value, None
