"""Recorded Loki answers (both encodings) become log records with trace ids."""

from __future__ import annotations

import httpx
import pytest

from dashboard.sources.base import SourceError
from dashboard.sources.http import JsonClient
from dashboard.sources.loki import LokiClient
from tests.support.loki_replay import LOKI_DATA


def _client(name: str, status: int = 200) -> LokiClient:
    body = (LOKI_DATA / name).read_bytes()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    return LokiClient(JsonClient("http://loki.test", transport=httpx.MockTransport(answer)))


def test_categorized_labels_give_trace_span_and_severity() -> None:
    logs = _client("trace_categorized.json").query_range("{}", 0, 1, 100)
    assert [r.severity for r in logs] == ["ERROR", "INFO"]  # newest first
    assert {r.trace_id for r in logs} == {"5b8efff798038103d269b633813fc60c"}
    assert logs[0].span_id == "eee19b7ec3c1b174"
    assert logs[0].service == "demo"
    assert logs[1].attributes["http_route"] == "/orders"


def test_plain_encoding_with_structlog_json_lines() -> None:
    logs = _client("search_plain.json").query_range("{}", 0, 1, 100)
    assert [r.body for r in logs] == [
        "shard query failed",
        "pool wait above 100 ms",
        "plain text line without a trace",
    ]
    assert logs[0].trace_id == "5b8efff798038103d269b633813fc60c"  # lower-cased
    assert logs[1].severity == "WARN"
    assert logs[2].trace_id == ""


def test_a_syntax_error_is_a_source_error_with_lokis_message() -> None:
    with pytest.raises(SourceError, match="parse error"):
        _client("bad_query.txt", 400).query_range("{", 0, 1, 10)
