"""Masks secrets in incoming telemetry before anything is written (log or store).

Applications leak credentials into telemetry by accident: an ``Authorization`` header
captured as ``http.request.header.authorization``, a ``?token=`` in ``url.query`` or
``url.full``, ``user:password@`` in a URL (the semantic conventions ask for
``REDACTED:REDACTED``), ``password=...`` in a log line. The collector is the last place
to stop them, and it stops them before the write-ahead log, so no copy is ever on disk.

Most requests hold nothing of the kind: a byte-level scan for the few markers (``token``,
``passw``, ``authoriz``, ``bearer``, ``user:pass@``, …) decides, and only a request that
has one is decoded, masked and encoded again (so this costs nothing on the hot path).
Masked: the value of any attribute or label whose key names a secret (by its words:
``x-auth-token``, ``db_password``, ``apiKey`` — not ``input_tokens``); inside every other
string value, bearer/basic credentials, JWTs, ``secret=value`` pairs and URL user info.
Span and metric names are left alone.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

__all__ = ["MASK", "redact_message", "redact_request", "redact_text", "secret_key", "suspect"]

MASK = "[REDACTED]"
#: What any maskable secret contains, for RE2 (Arrow's regex engine: one linear pass over
#: the bytes, under 1 µs per span, where Python's case-insensitive ``re`` took 100 and a
#: dozen substring searches 6; context around ``pwd`` made RE2 ten times slower). Precise
#: enough not to fire on the random bytes of protobuf ids (``api`` alone did, one body in
#: eight); plain ``key`` is no marker (routes like ``/items/{key}``). False positives
#: only cost time.
_RE2_MARKERS = (
    r"pass|pwd|secret|token|authoriz|cookie|api[-_.]?key|private[-_.]?key|credential"
    r"|bearer|eyj[a-z0-9_-]{8}|://[^/\s:@\"]+:[^/\s@\"]*@"
)
#: Small bodies: the same by substring search over the lowered bytes (Arrow compiles its
#: pattern per call, ~0.1 ms, which only pays off on large bodies).
_MARKERS = (
    b"pass",
    b"pwd",
    b"secret",
    b"token",
    b"authoriz",
    b"cookie",
    b"apikey",
    b"api_key",
    b"api-key",
    b"api.key",
    b"private",
    b"credential",
    b"bearer",
    b"eyj",
)
_RE2_FROM = 16 << 10
_URL_USERINFO = re.compile(rb"://[^/\s:@\"]{1,256}:[^/\s@\"]{0,256}@")
_SECRET_WORDS = frozenset(
    (
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "authorization",
        "cookie",
        "apikey",
        "credential",
        "credentials",
        "privatekey",
        "passphrase",
    )
)
_SECRET_PAIRS = frozenset(
    (("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"), ("auth", "key"))
)
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]*@")
_PAIR = re.compile(
    r"(?i)([\w.-]*(?:passw(?:or)?d|pwd|secret|token|api[_-]?key|apikey|credential|"
    r"authorization|cookie|private[_-]?key)[\w.-]*[\"']?\s*[=:]\s*)"
    r"(?!\[REDACTED\])(?!(?:bearer|basic)\s)(\"[^\"]*\"|'[^']*'|[^\s,;&\"'}]+)"
)
_KINDS = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}


def secret_key(key: str) -> bool:
    """Whether an attribute key names a secret, judged by its words."""
    words = [w.lower() for w in _WORD.findall(key)]
    if any(w in _SECRET_WORDS for w in words):
        return True
    joined = "".join(words)
    if joined in _SECRET_WORDS:
        return True
    return any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words))


def redact_text(text: str) -> str:
    """Credentials inside free text masked; the text is otherwise unchanged."""
    if not text:
        return text
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _JWT.sub(MASK, text)
    text = _USERINFO.sub(lambda m: f"{m.group(1)}REDACTED:REDACTED@", text)
    return _PAIR.sub(lambda m: m.group(1) + MASK, text)


def _any_value(value: Any, secret: bool) -> None:
    which = value.WhichOneof("value")
    if which is None:
        return
    if secret:
        value.Clear()
        value.string_value = MASK
    elif which == "string_value":
        masked = redact_text(value.string_value)
        if masked != value.string_value:
            value.string_value = masked
    elif which == "array_value":
        for v in value.array_value.values:
            _any_value(v, False)
    elif which == "kvlist_value":
        _key_values(value.kvlist_value.values)


def _key_values(kvs: Any) -> None:
    for kv in kvs:
        _any_value(kv.value, secret_key(kv.key))


def _walk(msg: Message) -> None:
    """Every attribute list, log body and status message under ``msg``."""
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        name = field.message_type.full_name
        if name == "opentelemetry.proto.common.v1.KeyValue":
            _key_values(value)
        elif name == "opentelemetry.proto.common.v1.AnyValue":
            _any_value(value, False)  # a log record's body
        elif isinstance(value, Message):
            _walk(value)
        else:
            for item in value:
                _walk(item)
    if isinstance(msg, Status) and msg.message:
        msg.message = redact_text(msg.message)


def _redact_zipkin(body: bytes) -> bytes:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return body  # refused as malformed by decode; nothing is stored
    if not isinstance(doc, list):
        return body
    for span in doc:
        if not isinstance(span, dict):
            continue
        tags = span.get("tags")
        if isinstance(tags, dict):
            for key, value in tags.items():
                if isinstance(value, str):
                    tags[key] = MASK if secret_key(str(key)) else redact_text(value)
        for ann in span.get("annotations") or []:
            if isinstance(ann, dict) and isinstance(ann.get("value"), str):
                ann["value"] = redact_text(ann["value"])
    return json.dumps(doc, separators=(",", ":")).encode()


_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _redact_exposition(body: bytes) -> bytes:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return body

    def label(m: re.Match[str]) -> str:
        if secret_key(m.group(1)):
            return f'{m.group(1)}="{MASK}"'
        return f'{m.group(1)}="{redact_text(m.group(2))}"'

    return _LABEL.sub(label, text).encode()


def redact_request(signal: str, body: bytes, fmt: str) -> bytes | None:
    """The body with its secrets masked, or None when it needs no change.

    ``fmt`` is ``proto`` (an OTLP protobuf request of ``signal``), ``zipkin`` or
    ``exposition`` (OTLP/JSON goes through ``redact_message`` once decoded). A body that
    fails to decode is left as it is: the decoder refuses it and nothing is stored.
    """
    if not suspect(body):
        return None
    if fmt == "zipkin":
        out = _redact_zipkin(body)
    elif fmt == "exposition":
        out = _redact_exposition(body)
    else:
        msg = _KINDS[signal]()
        try:
            msg.ParseFromString(body)
        except (DecodeError, ValueError):
            return None
        _walk(msg)
        out = msg.SerializeToString()
    return None if out == body else out


def redact_message(msg: Message) -> None:
    """Mask secrets in an already decoded OTLP request, in place."""
    _walk(msg)


def suspect(body: bytes) -> bool:
    """Whether ``body`` may hold something to mask (false positives only cost time)."""
    if len(body) >= _RE2_FROM:
        hit = pc.match_substring_regex(
            pa.array([body], pa.binary()), _RE2_MARKERS, ignore_case=True
        )[0]
        return bool(hit.as_py())
    low = body.lower()
    if any(marker in low for marker in _MARKERS):
        return True
    return b"://" in low and _URL_USERINFO.search(low) is not None
