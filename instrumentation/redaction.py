"""Masks secrets in log events before they reach stdout or the collector.

A structlog processor: values under keys that look secret (password, token, secret,
authorization, cookie, api key, session, credential) become ``[REDACTED]``, and inside
every string value bearer/basic credentials, JWTs and ``password=...``-style pairs are
masked. Nested dicts and lists are walked to a bounded depth.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping
from typing import Any

__all__ = ["DEFAULT_SECRET_KEYS", "MASK", "Redactor"]

MASK = "[REDACTED]"
DEFAULT_SECRET_KEYS = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "api-key",
    "session",
    "credential",
    "private_key",
)
#: Keys every event has; their values are ours, never user secrets.
_STRUCTURAL = frozenset(("event", "logger", "level", "timestamp", "trace_id", "span_id"))
_MAX_DEPTH = 6

_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")


class Redactor:
    """``Redactor(extra_keys)(logger, method, event_dict)`` → the event with secrets masked."""

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        keys = [*DEFAULT_SECRET_KEYS, *(k.lower() for k in extra_keys if k)]
        alternation = "|".join(re.escape(k) for k in keys)
        self._key = re.compile(alternation, re.IGNORECASE)
        # key=value / key: value inside free text, e.g. "login failed password=hunter2"
        self._pair = re.compile(
            rf"(?i)([\w.-]*(?:{alternation})[\w.-]*[\"']?\s*[=:]\s*)"
            # a "Bearer …" value was masked already by _BEARER; keep its scheme readable
            r"(?!(?:bearer|basic)\s)(\"[^\"]*\"|'[^']*'|[^\s,;&\"']+)"
        )

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        for key, value in list(event_dict.items()):
            if key in _STRUCTURAL:
                if key == "event" and isinstance(value, str):
                    event_dict[key] = self.text(value)
                continue
            event_dict[key] = self._value(key, value, 0)
        return event_dict

    def secret_key(self, key: object) -> bool:
        return isinstance(key, str) and self._key.search(key) is not None

    def text(self, value: str) -> str:
        """Mask credentials inside free text."""
        if not value:
            return value
        value = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", value)
        value = _JWT.sub(MASK, value)
        return self._pair.sub(lambda m: m.group(1) + MASK, value)

    def _value(self, key: object, value: Any, depth: int) -> Any:
        if self.secret_key(key) and value is not None:
            return MASK
        if isinstance(value, str):
            return self.text(value)
        if depth >= _MAX_DEPTH:
            return value
        if isinstance(value, dict):
            return {k: self._value(k, v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._value(None, v, depth + 1) for v in value]
        return value
