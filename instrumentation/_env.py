"""Typed readers for environment variables that follow the OpenTelemetry spec's rules.

An empty value is unset; a bad value logs one warning naming the variable and the
default used instead. Nothing here raises: a typo in the environment must never stop
the host app from starting.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

__all__ = ["Env"]

_log = logging.getLogger("instrumentation.settings")


class Env:
    """A read-only view of one environment mapping (tests pass a dict)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def warn(self, name: str, raw: str, using: object) -> None:
        _log.warning("%s=%r is invalid; using %s", name, raw, using)

    def text(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def flag(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        if raw.lower() == "true":
            return True
        if raw.lower() != "false":
            self.warn(name, raw, "false (only 'true' means true)")
        return False

    def number(self, name: str, default: float, *, minimum: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < minimum:
            self.warn(name, raw, default)
            return default
        return value

    def ratio(self, name: str, default: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not 0.0 <= value <= 1.0:  # also false for NaN
            self.warn(name, raw, default)
            return default
        return value

    def choice(
        self, name: str, valid: tuple[str, ...], default: str, *, upper: bool = False
    ) -> str:
        raw = self.text(name)
        if raw is None:
            return default
        value = raw.upper() if upper else raw.lower()
        if value not in valid:
            self.warn(name, raw, f"{default} (valid: {', '.join(valid)})")
            return default
        return value

    def choices(
        self, name: str, valid: tuple[str, ...], default: tuple[str, ...]
    ) -> tuple[str, ...]:
        """A comma-separated list; unknown entries are dropped with a warning."""
        raw = self.text(name)
        if raw is None:
            return default
        chosen: list[str] = []
        for item in (v.strip().lower() for v in raw.split(",")):
            if not item:
                continue
            if item not in valid:
                self.warn(name, item, f"the other entries (valid: {', '.join(valid)})")
                continue
            if item not in chosen:
                chosen.append(item)
        if not chosen:
            return default
        if "none" in chosen:
            return ("none",)
        return tuple(chosen)

    def items(self, name: str) -> list[str]:
        raw = self.text(name)
        return [v.strip() for v in raw.split(",") if v.strip()] if raw else []

    def kv(self, name: str) -> dict[str, str]:
        """``k=v,k2=v2`` with URL-decoded values, as OTEL_RESOURCE_ATTRIBUTES/HEADERS use."""
        out: dict[str, str] = {}
        for item in self.items(name):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                self.warn(name, item, "nothing for this entry (expected key=value)")
                continue
            out[unquote(key.strip())] = unquote(value.strip())
        return out

    def url(self, name: str, default: str | None) -> str | None:
        raw = self.text(name)
        if raw is None:
            return default
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.warn(name, raw, default)
            return default
        return raw

    def path(self, name: str, default: str) -> str:
        raw = self.text(name)
        if raw is None:
            return default
        if not raw.startswith("/") or any(c in raw for c in "?# "):
            self.warn(name, raw, default)
            return default
        return raw.rstrip("/") or "/"
