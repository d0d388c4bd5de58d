"""Masks secrets in log events and spans before they reach stdout or the collector.

``Redactor`` is a structlog processor: values under keys that look secret (password,
token, secret, authorization, cookie, api key, session, credential) become
``[REDACTED]``, and inside every string value bearer/basic credentials, JWTs, URL
credentials (``user:pass@``) and ``password=...``-style pairs (``?token=…`` in a URL
too) are masked. Nested dicts and lists are walked to a bounded depth.

``SpanRedactor`` applies the same rules to a finished span on its way to the exporter:
attributes (and event attributes) under secret-looking keys — a captured
``http.request.header.authorization`` — are masked, and free-text attributes that can
carry credentials (``url.full`` of an outgoing call with ``?api_key=…``, exception
messages and stacks, the status message) are scanned. It runs in the export thread,
never on the request path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

__all__ = ["DEFAULT_SECRET_KEYS", "MASK", "TEXT_ATTRIBUTES", "Redactor", "SpanRedactor"]

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
_USERINFO = re.compile(r"(?<=://)[^/?#@\s:]+:[^/?#@\s]+@")
#: Span and event attributes whose values are free text that can carry a credential.
TEXT_ATTRIBUTES = frozenset(
    (
        "url.full",
        "url.query",
        "http.url",
        "http.target",
        "exception.message",
        "exception.stacktrace",
        "db.query.text",
        "db.statement",
    )
)


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
        value = _USERINFO.sub(f"{MASK}@", value)
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


_KEEP, _SCAN, _MASK = 0, 1, 2


class SpanRedactor:
    """``SpanRedactor(redactor)(span)`` → the span, or a copy with secrets masked."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._verdicts: dict[str, int] = {}

    def _verdict(self, key: str) -> int:
        verdict = self._verdicts.get(key)
        if verdict is None:
            if self._redactor.secret_key(key):
                verdict = _MASK
            elif key in TEXT_ATTRIBUTES:
                verdict = _SCAN
            else:
                verdict = _KEEP
            if len(self._verdicts) < 4096:  # keys come from code; bounded all the same
                self._verdicts[key] = verdict
        return verdict

    def attributes(self, attrs: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """A masked copy, or None when nothing needed masking (the common case)."""
        if not attrs:
            return None
        out: dict[str, Any] | None = None
        for key, value in attrs.items():
            verdict = self._verdict(key)
            if verdict == _KEEP:
                continue
            if verdict == _MASK:
                new: Any = MASK
            elif isinstance(value, str):
                new = self._redactor.text(value)
            else:
                continue
            if new != value:
                out = dict(attrs) if out is None else out
                out[key] = new
        return out

    def __call__(self, span: Any) -> Any:
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.trace import Status

        attributes = self.attributes(span.attributes)
        events = list(span.events)
        changed = attributes is not None
        for i, event in enumerate(events):
            masked = self.attributes(event.attributes)
            if masked is not None:
                events[i] = Event(event.name, masked, event.timestamp)
                changed = True
        status = span.status
        if status.description:
            description = self._redactor.text(status.description)
            if description != status.description:
                status = Status(status.status_code, description)
                changed = True
        if not changed:
            return span
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attributes if attributes is not None else span.attributes,
            events=events,
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )
