"""The analysis' trace sample is spread over its window, one trace query per slice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dashboard.sources.model import Trace
from dashboard.sources.query import TimeWindow, TraceQuery
from dashboard.sources.shared import sample_traces


class _Recorder:
    """Answers every trace search with nothing, remembering what was asked."""

    def __init__(self) -> None:
        self.queries: list[TraceQuery] = []

    def fetch_traces(self, query: TraceQuery) -> list[Trace]:
        self.queries.append(query)
        return []


def test_twenty_slices_ask_for_ten_traces_each_across_the_whole_window() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    window = TimeWindow(start, start + timedelta(seconds=60))
    source = _Recorder()
    sample_traces(source, window, 200, slices=20)
    assert len(source.queries) == 20
    assert {q.limit for q in source.queries} == {10}
    assert source.queries[0].window.start == window.start
    assert source.queries[-1].window.end == window.end
    for a, b in zip(source.queries, source.queries[1:], strict=False):
        assert a.window.end == b.window.start


def test_a_short_window_gets_slices_of_a_second() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    source = _Recorder()
    sample_traces(source, TimeWindow(start, start + timedelta(seconds=12.5)), 200, slices=20)
    assert len(source.queries) == 12
    source = _Recorder()
    sample_traces(source, TimeWindow(start, start + timedelta(milliseconds=500)), 200, slices=20)
    assert len(source.queries) == 1
