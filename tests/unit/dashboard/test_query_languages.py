"""User values reach PromQL and LogQL only as escaped string literals."""

from __future__ import annotations

import json

import pytest

from dashboard.sources.loki import logql, logql_string
from dashboard.sources.prometheus import promql_string, selector
from dashboard.sources.query import LogQuery, TimeWindow

HOSTILE = ['a"b', "a\\b", 'x"} or vector(1) #', "line\nbreak", "ünïcode ☃", "{}", "'"]


@pytest.mark.parametrize("value", HOSTILE)
def test_promql_string_round_trips_as_a_go_string(value: str) -> None:
    literal = promql_string(value)
    assert literal.startswith('"')
    assert literal.endswith('"')
    # Go's string escapes are a superset of JSON's, so decoding as JSON gives the value back.
    assert json.loads(literal) == value
    assert "\n" not in literal


def test_selector_escapes_values_and_checks_names() -> None:
    expr = selector("http_server_request_duration_seconds_count", {"http_route": 'x"} or up{'})
    assert expr == 'http_server_request_duration_seconds_count{http_route="x\\"} or up{"}'
    with pytest.raises(ValueError, match="label name"):
        selector("m", {'bad"label': "v"})
    with pytest.raises(ValueError, match="metric name"):
        selector("m{x=1}", {})


def test_logql_filters_a_trace_by_its_id() -> None:
    q = LogQuery(trace_id="0af7651916cd43dd8448eb211c80319c")
    assert logql(q) == '{service_name=~".+"} | trace_id="0af7651916cd43dd8448eb211c80319c"'


@pytest.mark.parametrize("value", HOSTILE)
def test_logql_escapes_service_and_text(value: str) -> None:
    window = TimeWindow.last(5)
    expr = logql(LogQuery(window=window, service=value, text=value, level="warn"))
    assert expr.startswith("{service_name=" + logql_string(value) + "}")
    assert '| severity_text=~"(?i)(WARN|ERROR|FATAL)"' in expr
    assert "\n" not in expr


def test_log_query_refuses_a_bad_trace_id() -> None:
    with pytest.raises(ValueError, match="32 lowercase"):
        LogQuery(trace_id='abc"} |= "')
