"""Loki HTTP API client: LogQL built from validated parts, every value escaped.

Logs reach Loki through its OTLP endpoint in the scaled shape, so ``service.name`` becomes
the ``service_name`` stream label and ``trace_id``/``span_id``/``severity_text`` are
structured metadata, filtered with label filters after the stream selector. Answers in
both encodings are read: plain (metadata merged into ``stream``) and ``categorize-labels``
(a third element per value with ``structuredMetadata`` and ``parsed``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from dashboard.sources.base import SourceError
from dashboard.sources.http import JsonClient
from dashboard.sources.model import LogRecord
from dashboard.sources.query import LEVELS, TRACE_ID, LogQuery

__all__ = ["LokiClient", "logql", "logql_string"]

#: Severity texts at or above each minimum level (OTLP severity_text, upper-case).
_AT_LEAST = {lvl: [x.upper() for x in LEVELS[i:]] for i, lvl in enumerate(LEVELS)}
_LEVEL_LABELS = ("severity_text", "detected_level", "level")


def logql_string(value: str) -> str:
    """A LogQL double-quoted string (Go escapes, like PromQL; JSON's are a safe subset)."""
    return json.dumps(value, ensure_ascii=False)


def logql(query: LogQuery, service_label: str = "service_name") -> str:
    """The LogQL for a log search: stream selector, then line and label filters."""
    if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", service_label):
        raise ValueError(f"not a label name: {service_label!r}")
    if query.service:
        expr = f"{{{service_label}={logql_string(query.service)}}}"
    else:
        expr = f'{{{service_label}=~".+"}}'
    if query.text:
        # `|~ "(?i)…"` with the text regex-quoted: case-insensitive like the collector's q.
        expr += f" |~ {logql_string('(?i)' + re.escape(query.text))}"
    if query.trace_id:
        if not TRACE_ID.match(query.trace_id):
            raise ValueError("trace id must be 32 lowercase hexadecimal characters")
        expr += f" | trace_id={logql_string(query.trace_id)}"
    if query.level and query.level != "trace":
        allowed = "|".join(_AT_LEAST[query.level])
        expr += f" | severity_text=~{logql_string('(?i)(' + allowed + ')')}"
    return expr


class LokiClient:
    def __init__(self, http: JsonClient) -> None:
        self.http = http

    @property
    def base_url(self) -> str:
        return self.http.base_url

    def query_range(self, expr: str, start_ns: int, end_ns: int, limit: int) -> list[LogRecord]:
        path = "/loki/api/v1/query_range"
        resp = self.http.get(
            path,
            {
                "query": expr,
                "start": str(start_ns),
                "end": str(end_ns),
                "limit": str(limit),
                "direction": "backward",
            },
        )
        try:
            body = resp.json()
        except ValueError:
            raise SourceError(
                self.base_url + path, f"answered {resp.status_code}: {resp.text[:200]}"
            ) from None
        if resp.status_code != 200 or body.get("status") != "success":
            message = body.get("error") or body.get("message") or resp.text[:200]
            raise SourceError(self.base_url + path, f"answered {resp.status_code}: {message}")
        data = body.get("data") or {}
        if data.get("resultType") != "streams":
            raise SourceError(self.base_url + path, "answered a non-log (metric) result")
        records = [rec for stream in data.get("result") or [] for rec in _records(stream)]
        records.sort(key=lambda r: r.time_ns, reverse=True)
        return records[:limit]


def _records(stream: dict[str, Any]) -> list[LogRecord]:
    labels = {str(k): str(v) for k, v in (stream.get("stream") or {}).items()}
    out = []
    for value in stream.get("values") or []:
        ts, line = value[0], value[1]
        meta = dict(labels)
        if len(value) > 2 and isinstance(value[2], dict):
            for part in ("structuredMetadata", "parsed"):
                meta.update({str(k): str(v) for k, v in (value[2].get(part) or {}).items()})
        out.append(_record(int(ts), str(line), meta))
    return out


def _record(ts: int, line: str, meta: dict[str, str]) -> LogRecord:
    body, fields = line, dict(meta)
    if line.startswith("{"):
        # A structlog JSON line (docs/telemetry.md): lift its keys next to the metadata.
        try:
            parsed = json.loads(line)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            body = str(parsed.get("event", line))
            fields.update({str(k): str(v) for k, v in parsed.items() if k != "event"})
    severity = next((fields[k] for k in _LEVEL_LABELS if fields.get(k)), "")
    service = fields.get("service_name") or fields.get("service.name") or fields.get("job", "")
    trace_id = fields.get("trace_id", "").lower()
    span_id = fields.get("span_id", "").lower()
    skip = {"service_name", "service.name", "trace_id", "span_id", *_LEVEL_LABELS}
    return LogRecord(
        time_ns=ts,
        service=service,
        severity=severity.upper(),
        body=body,
        trace_id=trace_id,
        span_id=span_id,
        attributes={k: v for k, v in fields.items() if k not in skip},
    )
