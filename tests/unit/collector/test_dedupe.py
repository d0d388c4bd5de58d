"""Span-level idempotence: a span repeated in another request is stored once; spans that
only share an id (Zipkin shared spans, same id with other content) are all kept."""

from __future__ import annotations

import random

import duckdb
import numpy as np
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.ingest import Kind, decode
from collector.store.dedupe import SpanDedupe
from collector.store.schema import create_schema
from collector.store.writer import Batch, insert_batches
from tests.support.spanstore import BASE_NS, S, request


def _keys(*values: int) -> np.ndarray:  # type: ignore[type-arg]
    return np.array(values, dtype=np.uint64)


def test_a_key_first_sent_by_an_earlier_request_of_the_group_is_not_fresh() -> None:
    d = SpanDedupe()
    batch_of = np.array([0, 0, 0, 1, 1, 1], dtype=np.int64)
    # Repeats inside one request stay (two spans sent); a later request's repeat does not.
    assert d.fresh(_keys(5, 5, 3, 5, 9, 9), batch_of).tolist() == [
        True, True, True, False, True, True,
    ]  # fmt: skip


def test_keys_added_are_recognised_until_they_leave_the_window() -> None:
    d = SpanDedupe(window_ns=100, max_keys=1000)
    d.add(_keys(1, 2, 3), now_ns=1000)
    assert d.fresh(_keys(2, 4)).tolist() == [False, True]
    d.add(_keys(4), now_ns=1150)  # the first group is now 150 ns old
    assert d.fresh(_keys(2, 4)).tolist() == [True, False]


def test_merged_levels_still_find_every_key_and_stay_within_max_keys() -> None:
    rng = np.random.default_rng(3)
    d = SpanDedupe(window_ns=10**18, max_keys=40_000)
    added = []
    for i in range(60):
        keys = rng.integers(0, 2**63, size=int(rng.integers(1, 2000)), dtype=np.uint64)
        d.add(keys, now_ns=i)
        added.append(keys)
        assert len(d) <= 40_000
    assert len(d._levels) < 15, "small arrays are merged into larger ones"
    recent = np.concatenate(added[-10:])
    assert not d.fresh(recent).any()
    assert d.fresh(rng.integers(0, 2**63, size=1000, dtype=np.uint64)).all()


def _store() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(config={"threads": 1})
    create_schema(conn)
    return conn


def _insert(conn: duckdb.DuckDBPyConnection, d: SpanDedupe, spans: list[S]) -> dict[str, int]:
    body = request(spans)
    decoded = decode(Kind.OTLP_TRACES_PROTO, body, BASE_NS, {})
    return insert_batches(conn, [Batch(decoded, None, BASE_NS)], d)


def _count(conn: duckdb.DuckDBPyConnection) -> int:
    row = conn.execute("SELECT count(*) FROM spans").fetchone()
    return int(row[0]) if row else -1


def _spans(n: int, seed: int) -> list[S]:
    rng = random.Random(seed)
    trace = rng.getrandbits(128)
    return [
        S(trace, rng.getrandbits(63) | 1, 0, f"op{i}", BASE_NS + i, 1000 + i, attrs={"i": i})
        for i in range(n)
    ]


def test_a_span_resent_in_another_request_is_stored_once() -> None:
    conn, d = _store(), SpanDedupe()
    spans = _spans(30, seed=1)
    assert _insert(conn, d, spans[:20]).get("duplicate_spans") == 0
    counts = _insert(conn, d, spans[10:])  # a different body: half old, half new
    assert counts["duplicate_spans"] == 10
    assert counts["spans"] == 10
    assert _count(conn) == 30
    assert _insert(conn, d, spans[:5] + spans[:5])["duplicate_spans"] == 10
    assert _count(conn) == 30
    twice = _spans(3, seed=5)
    assert _insert(conn, d, twice + twice)["duplicate_spans"] == 0, "one request, two spans"
    assert _insert(conn, d, twice)["duplicate_spans"] == 3
    assert _count(conn) == 36
    trace_rows = conn.execute("SELECT count(*) FROM trace_index").fetchone()
    assert trace_rows == (3,), "a request of only duplicates adds no trace_index row"


def test_spans_sharing_an_id_with_other_content_are_all_kept() -> None:
    conn, d = _store(), SpanDedupe()
    client = S(7, 42, 1, "get", BASE_NS, 5000, kind=Span.SPAN_KIND_CLIENT, service="front")
    server = S(7, 42, 1, "get", BASE_NS + 100, 4000, kind=Span.SPAN_KIND_SERVER, service="back")
    later = S(7, 42, 1, "get", BASE_NS + 9000, 5000, kind=Span.SPAN_KIND_CLIENT, service="front")
    tagged = S(7, 42, 1, "get", BASE_NS, 5000, kind=Span.SPAN_KIND_CLIENT, service="front",
               attrs={"retry": 1})  # fmt: skip
    for spans in ([client], [server], [later], [tagged], [client, server]):
        _insert(conn, d, spans)
    assert _count(conn) == 4


def test_the_window_rebuilt_from_the_store_recognises_earlier_spans() -> None:
    conn, first = _store(), SpanDedupe()
    spans = _spans(50, seed=2)
    _insert(conn, first, spans[:40])
    restarted = SpanDedupe()
    assert restarted.load(conn, BASE_NS) == 40
    assert _insert(conn, restarted, spans[30:])["duplicate_spans"] == 10
    assert _count(conn) == 50


def test_requests_committed_together_are_deduplicated_against_each_other() -> None:
    conn, d = _store(), SpanDedupe()
    spans = _spans(15, seed=3)
    batches = [
        Batch(decode(Kind.OTLP_TRACES_PROTO, request(part), BASE_NS, {}), None, BASE_NS)
        for part in (spans[:10], spans[5:], spans[:10])
    ]
    counts = insert_batches(conn, batches, d)
    assert (counts["spans"], counts["duplicate_spans"]) == (15, 15)
    assert _count(conn) == 15
