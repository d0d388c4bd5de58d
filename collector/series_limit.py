"""The cardinality guard: at most so many series per metric, and in all, per window.

A label holding user ids or raw paths turns one metric into 100k series; stored as they
come, they swamp the metric queries and the store. Like Mimir's per-metric series limit,
the collector admits the first ``max_per_metric`` series of each metric family (and
``max_total`` over all families) in a window and refuses the points of any further
series: the sender is told in ``partial_success`` (``rejected_data_points``), and
``otelcol_receiver_refused_metric_points_total{reason="series_limit"}`` counts them.
Points of admitted series keep flowing. The window restarts every hour, as series come
and go.

Memory is bounded by ``max_total`` 63-bit keys. The refused keys go into the request's
write-ahead-log record, so a replay after a crash refuses exactly the same points.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

__all__ = ["SeriesLimiter", "drop_series"]

WINDOW_S = 3600.0


def drop_series(
    points: pa.Table,
    exemplars: pa.Table,
    point_keys: list[int],
    exemplar_keys: list[int],
    refused: set[int],
) -> tuple[pa.Table, pa.Table, int]:
    """``points`` and ``exemplars`` without the rows of ``refused`` series, and how many
    data points that removed."""
    pk = np.fromiter(point_keys, dtype=np.uint64, count=len(point_keys))
    ref = np.fromiter(refused, dtype=np.uint64, count=len(refused))
    drop = np.isin(pk, ref)
    n = 0
    if drop.any():
        times = points.column("time_ns").to_numpy()
        n = len({(int(k), int(t)) for k, t in zip(pk[drop], times[drop], strict=True)})
        points = points.filter(pa.array(~drop))
    if exemplar_keys:
        ek = np.fromiter(exemplar_keys, dtype=np.uint64, count=len(exemplar_keys))
        edrop = np.isin(ek, ref)
        if edrop.any():
            exemplars = exemplars.filter(pa.array(~edrop))
    return points, exemplars, n


class SeriesLimiter:
    """Used on the event loop only (no lock): ``admit`` runs between decode and the
    write-ahead-log append, in the order records enter the log."""

    def __init__(self, max_per_metric: int, max_total: int, window_s: float = WINDOW_S) -> None:
        if max_per_metric < 0 or max_total < 0:
            raise ValueError("series limits must be >= 0 (0 = no limit)")
        self.max_per_metric = max_per_metric
        self.max_total = max_total
        self._window_s = window_s
        self._known: dict[str, set[int]] = {}
        self._total = 0
        self._window_start = time.monotonic()

    def __len__(self) -> int:
        return self._total

    def admit(self, families: list[str], keys: list[int]) -> list[int]:
        """The series (of the rows' ``families`` and ``keys``) refused; admits the rest."""
        if not keys or (self.max_per_metric == 0 and self.max_total == 0):
            return []
        now = time.monotonic()
        if now - self._window_start > self._window_s:
            self._known.clear()
            self._total = 0
            self._window_start = now
        refused: list[int] = []
        seen: set[int] = set()
        per = self.max_per_metric or 1 << 62
        cap = self.max_total or 1 << 62
        for family, key in zip(families, keys, strict=True):
            if key in seen:
                continue
            seen.add(key)
            known = self._known.get(family)
            if known is None:
                known = self._known[family] = set()
            if key in known:
                continue
            if len(known) >= per or self._total >= cap:
                refused.append(key)
                continue
            known.add(key)
            self._total += 1
        return refused
