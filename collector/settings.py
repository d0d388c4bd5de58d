"""Collector settings, read once from flags and ``NARROWS_*`` variables into a frozen object.

A malformed environment value warns and falls back to its default (the OpenTelemetry
rule for settings); a malformed flag is an error at start-up.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CollectorSettings", "parse_age", "parse_size"]

_log = logging.getLogger(__name__)
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1e3,
    "kb": 1e3,
    "kib": 1024,
    "m": 1e6,
    "mb": 1e6,
    "mib": 1024**2,
    "g": 1e9,
    "gb": 1e9,
    "gib": 1024**3,
    "t": 1e12,
    "tb": 1e12,
    "tib": 1024**4,
}
_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?")
_AGE_NS = {"ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9, "d": 86400e9, "w": 604800e9, None: 1e9}


def parse_size(text: str) -> int:
    """``2GB``, ``512MiB``, ``0`` → bytes; ValueError otherwise."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a size like 2GB or 512MiB")
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()])


def parse_age(text: str) -> int:
    """``24h``, ``7d``, ``30m``, ``0`` → nanoseconds (a bare number is seconds)."""
    m = _AGE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration like 24h, 7d or 0")
    return int(float(m.group(1)) * _AGE_NS[m.group(2)])


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be between 0 and 1")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _env(environ: Mapping[str, str], name: str, parse, default):  # type: ignore[no-untyped-def]
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        _log.warning("ignoring %s=%r (%s); using the default %r", name, raw, exc, default)
        return default


@dataclass(frozen=True)
class CollectorSettings:
    data_dir: Path = Path(".narrows")
    listen: str = "127.0.0.1"
    otlp_port: int = 4318
    zipkin_port: int = 9411
    query_port: int = 16686
    token: str | None = None
    max_request_bytes: int = 64 << 20
    """Largest request body after decompression (413 beyond)."""
    queue_bytes: int = 256 << 20
    """Memory bound on accepted-but-unstored data; receivers answer 503 beyond it."""
    retention_ns: int = 24 * 3600 * 10**9
    max_size: int = 2 * 10**9
    query_timeout_s: float = 10.0
    query_max_range_ns: int = 31 * 86400 * 10**9
    duckdb_threads: int = 0
    duckdb_memory: str = ""
    wal_fsync: bool = True
    scrape: tuple[str, ...] = field(default_factory=tuple)
    max_series_per_metric: int = 10_000
    """New series of one metric family admitted per hour; points of further ones are
    refused (``partial_success``) and counted. 0 = no limit."""
    max_series: int = 200_000
    """The same over all families (bounds the guard's memory). 0 = no limit."""
    test_refuse_ratio: float = 0.0
    """TEST ONLY (``NARROWS_TEST_REFUSE_RATIO``): share of ingest requests answered 503
    (receivers/refusal.py); 0 in production."""
    test_refuse_for_s: float = 0.0
    """TEST ONLY (``NARROWS_TEST_REFUSE_FOR``): how long the refusals last; 0 = always."""
    test_refuse_every_s: float = 0.0
    """TEST ONLY (``NARROWS_TEST_REFUSE_EVERY``): the storm repeats this often; 0 = once."""

    @property
    def db_path(self) -> Path:
        return self.data_dir / "narrows.duckdb"

    @property
    def wal_dir(self) -> Path:
        return self.data_dir / "wal"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] = os.environ, **values: object
    ) -> CollectorSettings:
        env: dict[str, object] = {
            "token": environ.get("NARROWS_TOKEN", "").strip() or None,
            "max_request_bytes": _env(environ, "NARROWS_MAX_REQUEST_SIZE", parse_size, 64 << 20),
            "queue_bytes": _env(environ, "NARROWS_QUEUE_SIZE", parse_size, 256 << 20),
            "retention_ns": _env(environ, "NARROWS_RETENTION", parse_age, cls.retention_ns),
            "max_size": _env(environ, "NARROWS_MAX_SIZE", parse_size, cls.max_size),
            "query_timeout_s": _env(
                environ, "NARROWS_QUERY_TIMEOUT", lambda s: parse_age(s) / 1e9, 10.0
            ),
            "query_max_range_ns": _env(
                environ, "NARROWS_QUERY_MAX_RANGE", parse_age, cls.query_max_range_ns
            ),
            "duckdb_threads": _env(environ, "NARROWS_DUCKDB_THREADS", int, 0),
            "max_series_per_metric": _env(
                environ, "NARROWS_MAX_SERIES_PER_METRIC", _count, cls.max_series_per_metric
            ),
            "max_series": _env(environ, "NARROWS_MAX_SERIES", _count, cls.max_series),
            "duckdb_memory": environ.get("NARROWS_DUCKDB_MEMORY", "").strip(),
            "wal_fsync": environ.get("NARROWS_WAL_FSYNC", "true").strip().lower() != "false",
            "test_refuse_ratio": _env(environ, "NARROWS_TEST_REFUSE_RATIO", _ratio, 0.0),
            "test_refuse_for_s": _env(
                environ, "NARROWS_TEST_REFUSE_FOR", lambda s: parse_age(s) / 1e9, 0.0
            ),
            "test_refuse_every_s": _env(
                environ, "NARROWS_TEST_REFUSE_EVERY", lambda s: parse_age(s) / 1e9, 0.0
            ),
        }
        env.update({k: v for k, v in values.items() if v is not None})
        return cls(**env)  # type: ignore[arg-type]
