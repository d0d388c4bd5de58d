"""Query-parameter parsing and validation shared by the Jaeger API and the aggregates.

Every parser raises ``BadParam``, which the routes turn into a 400 with Jaeger's message
shape: ``malformed parameter NAME: reason``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "BadParam",
    "Bounds",
    "format_ns",
    "parse_attributes",
    "parse_bool",
    "parse_duration",
    "parse_int",
    "parse_range",
    "parse_time",
]

_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|z|[+-]\d\d:\d\d)")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


_MAX_DURATION_NS = float(2**63 - 1)


class BadParam(Exception):
    """A query parameter is missing or malformed; answered with 400."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"malformed parameter {name}: {reason}")
        self.name = name


@dataclass(frozen=True)
class Bounds:
    """Limits every query is held to (from settings)."""

    max_range_ns: int
    max_points: int = 1_500
    default_range_ns: int = 3_600_000_000_000


def parse_time(name: str, raw: str) -> int:
    """RFC 3339 with up to nanosecond precision (Go's time.RFC3339Nano) → Unix nanoseconds."""
    m = _RFC3339.fullmatch(raw.strip())
    if not m:
        raise BadParam(name, f"{raw[:64]!r} is not an RFC 3339 timestamp")
    zone = "+00:00" if m.group(3) in ("Z", "z") else m.group(3)
    try:
        base = datetime.fromisoformat(m.group(1) + zone)
    except ValueError as exc:
        raise BadParam(name, str(exc)) from None
    frac = int((m.group(2) or "").ljust(9, "0") or 0)
    return int(base.timestamp()) * 1_000_000_000 + frac


def format_ns(ns: int) -> str:
    """Unix nanoseconds → RFC 3339 UTC with nanoseconds (the inverse of ``parse_time``)."""
    secs, frac = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


def parse_duration(name: str, raw: str) -> int:
    """A Go duration string (``1500ns``, ``150ms``, ``1m30s``) → nanoseconds."""
    text = raw.strip()
    if len(text) > 64:
        # Checked before the regex: scanning a 10 kB digit string for a unit at every
        # position is quadratic, seconds of CPU for one request.
        raise BadParam(name, f'time: invalid duration "{raw[:64]}…" (too long)')
    if text in ("0", "+0", "-0"):
        return 0
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    pos = 0
    total = 0.0
    for m in _DURATION_PART.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise BadParam(name, f'time: invalid duration "{raw[:64]}"')
    if not total <= _MAX_DURATION_NS:  # Go's limit is ~292 years; also refuses inf
        raise BadParam(name, f'time: invalid duration "{raw[:64]}" (out of range)')
    return sign * int(total)


def parse_int(
    q: Mapping[str, str], name: str, default: int, lo: int, hi: int, *, clamp: bool = True
) -> int:
    """An integer parameter; out-of-range values are clamped into [lo, hi] (or refused)."""
    raw = q.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParam(name, f"{raw[:64]!r} is not an integer") from None
    if not clamp and not lo <= value <= hi:
        raise BadParam(name, f"must be between {lo} and {hi}")
    return max(lo, min(hi, value))


def parse_bool(name: str, raw: str) -> bool:
    """Go's strconv.ParseBool spellings."""
    if raw in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if raw in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise BadParam(name, f'strconv.ParseBool: parsing "{raw[:64]}": invalid syntax')


def parse_attributes(name: str, raw: str) -> dict[str, str]:
    """A JSON object of string values, e.g. ``{"http.route":"/items/{id}"}``."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadParam(name, f"not JSON: {str(exc)[:100]}") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadParam(name, "must be a JSON object of string values")
    if len(value) > 32:
        raise BadParam(name, "at most 32 attributes")
    return value


def parse_range(
    q: Mapping[str, str], bounds: Bounds, now_ns: int, *, start: str = "start", end: str = "end"
) -> tuple[int, int]:
    """``start``/``end`` (RFC 3339; default: the last hour), checked against the range limit."""
    end_ns = parse_time(end, q[end]) if q.get(end) else now_ns
    start_ns = parse_time(start, q[start]) if q.get(start) else end_ns - bounds.default_range_ns
    if start_ns >= end_ns:
        raise BadParam(end, f"must be after {start}")
    if end_ns - start_ns > bounds.max_range_ns:
        hours = bounds.max_range_ns / 3.6e12
        raise BadParam(start, f"the range may span at most {hours:g}h")
    return start_ns, end_ns
