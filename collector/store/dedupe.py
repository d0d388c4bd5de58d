"""Span-level idempotence: a span re-sent in a later request is stored once.

A sender that retries with a different batch (an agent re-batching, a request split after a
413, a reporter that re-sends) repeats spans the store already holds. Spans are the same
when their *content key* is: a 64-bit DuckDB ``hash`` of the trace id, span id, parent,
kind, start, end, name, service, status code, resource, scope, generic attributes, events
and links. Zipkin's shared client/server spans (one id, two kinds) and spans that reuse an
id with other content have different keys and are all kept.

The writer checks each group of batches against the keys of the recently stored spans
(the last ``WINDOW_NS`` of arrivals, at most ``MAX_KEYS``) before inserting it — duplicates
arrive within a retry's back-off, seconds to a minute later. The keys live in a few sorted
numpy arrays (an LSM: small arrays merge into larger ones, the oldest are dropped), so a
check is a binary search per array, vectorized, with no index on the hot insert path. On
start the window is rebuilt from the stored spans, so a re-send across a restart is
recognised too.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np

__all__ = ["MAX_KEYS", "SPAN_KEY_SQL", "WINDOW_NS", "SpanDedupe"]

#: Over a relation with the ``spans`` table's columns and types.
SPAN_KEY_SQL = (
    "hash(trace_id, span_id, parent_span_id, kind, start_ns, end_ns, name, service_name,"
    " status_code, resource_id, scope_id, attributes, events, links)"
)
WINDOW_NS = 15 * 60 * 10**9
MAX_KEYS = 4_000_000

Keys = np.ndarray[Any, np.dtype[np.uint64]]


class SpanDedupe:
    """The content keys of recently stored spans (used by the single writer thread only)."""

    def __init__(self, window_ns: int = WINDOW_NS, max_keys: int = MAX_KEYS) -> None:
        self.window_ns = window_ns
        self.max_keys = max_keys
        # (sorted distinct keys, when the newest of them was stored), oldest and largest first.
        self._levels: list[tuple[Keys, int]] = []

    def __len__(self) -> int:
        return sum(len(keys) for keys, _ in self._levels)

    def fresh(
        self, keys: Keys, batch_of: np.ndarray[Any, np.dtype[np.int64]] | None = None
    ) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """False for each key already in the window, or first seen in an earlier batch of
        this group (``batch_of[i]`` = the request row ``i`` came in). Repeats *within* one
        request are kept: the sender sent two spans, not a retry (Jaeger keeps both too)."""
        mask = np.ones(len(keys), dtype=np.bool_)
        if batch_of is not None and len(keys):
            _, first, inv = np.unique(keys, return_index=True, return_inverse=True)
            mask &= batch_of == batch_of[first][inv]
        for level, _ in self._levels:
            at = np.searchsorted(level, keys)
            at[at == len(level)] = 0
            mask &= level[at] != keys
        return mask

    def add(self, keys: Keys, now_ns: int) -> None:
        """Remember keys just committed; then merge small arrays and drop old ones."""
        if len(keys):
            self._levels.append((np.unique(keys), now_ns))
        cap = max(1, self.max_keys // 4)
        while len(self._levels) >= 2:
            (a, ta), (b, tb) = self._levels[-2], self._levels[-1]
            if len(a) > 2 * len(b) or len(a) + len(b) > cap:
                break
            self._levels[-2:] = [(np.union1d(a, b), max(ta, tb))]
        total = len(self)
        while self._levels and (
            total > self.max_keys or self._levels[0][1] < now_ns - self.window_ns
        ):
            total -= len(self._levels.pop(0)[0])

    def load(self, conn: duckdb.DuckDBPyConnection, now_ns: int) -> int:
        """Rebuild the window from the stored spans (at start-up); returns the keys loaded."""
        self._levels = []
        got = conn.execute(
            f"SELECT received_ns, {SPAN_KEY_SQL} AS k FROM spans WHERE received_ns >= ?",
            [now_ns - self.window_ns],
        ).fetchnumpy()
        received = np.asarray(got["received_ns"], dtype=np.int64)
        keys = np.asarray(got["k"], dtype=np.uint64)
        if len(keys) > self.max_keys:
            newest = np.argpartition(received, len(received) - self.max_keys)
            keep = newest[len(received) - self.max_keys :]
            received, keys = received[keep], keys[keep]
        if len(keys):
            self._levels = [(np.unique(keys), int(received.max()))]
        return len(keys)
