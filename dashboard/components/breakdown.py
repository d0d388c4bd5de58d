"""Request latency broken down by what each request touched (shards, cache outcome).

Computed from whole traces (the same Jaeger-API search on every backend): a request
counts once for every shard it queried, and once under its cache outcome.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from dashboard.sources.model import Trace

__all__ = ["by_cache_result", "by_shard", "entry_duration_ms"]

_COLUMNS = ["requests", "p50_ms", "p95_ms", "mean_ms"]


def entry_duration_ms(trace: Trace) -> float:
    servers = [s for s in trace.spans if s.kind == 2]
    entry = min(servers, key=lambda s: s.start_ns) if servers else None
    return entry.duration_ms if entry else trace.duration_ms


def _summary(rows: list[dict[str, object]], key: str) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(columns=[key, *_COLUMNS])
    frame = pd.DataFrame(rows)
    g = frame.groupby(key)["duration_ms"]
    out = pd.DataFrame(
        {
            "requests": g.size(),
            "p50_ms": g.median().round(2),
            "p95_ms": g.quantile(0.95).round(2),
            "mean_ms": g.mean().round(2),
        }
    )
    return out.reset_index().sort_values(key)


def by_shard(traces: Sequence[Trace]) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    for t in traces:
        shards = {
            str(s.attributes["app.shard.id"]) for s in t.spans if "app.shard.id" in s.attributes
        }
        rows += [{"shard": sh, "duration_ms": entry_duration_ms(t)} for sh in sorted(shards)]
    return _summary(rows, "shard")


def by_cache_result(traces: Sequence[Trace]) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    for t in traces:
        lookups = [s for s in t.spans if s.attributes.get("app.cache.name") is not None]
        if not lookups:
            outcome = "no lookup"
        elif any(s.status_code == 2 for s in lookups):
            outcome = "error"
        elif all(s.attributes.get("app.cache.hit") is True for s in lookups):
            outcome = "hit"
        else:
            outcome = "miss"
        rows.append({"cache": outcome, "duration_ms": entry_duration_ms(t)})
    return _summary(rows, "cache")
