"""What `narrows load` measures: latency histograms per step, endpoint and shard, and reports.

Latencies go into log-bucketed histograms (1 % relative precision, like HdrHistogram) so a
run of any length uses bounded memory and percentiles stay honest; the reports are a plain
table and JSON (the analysis fits the Universal Scalability Law to the per-step rows).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LatencyHistogram", "LoadReport", "Series", "StepStats", "render_table"]

_MIN_S = 1e-6
_GROWTH = 1.01
_LOG_GROWTH = math.log(_GROWTH)


class LatencyHistogram:
    """Counts of latencies in buckets [1µs·1.01^i, 1µs·1.01^(i+1)); percentiles within 1 %."""

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self.count = 0
        self.total_s = 0.0
        self.max_s = 0.0
        self.min_s = math.inf

    def record(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        index = 0 if seconds <= _MIN_S else int(math.log(seconds / _MIN_S) / _LOG_GROWTH)
        self._buckets[index] = self._buckets.get(index, 0) + 1
        self.count += 1
        self.total_s += seconds
        self.max_s = max(self.max_s, seconds)
        self.min_s = min(self.min_s, seconds)

    def percentile(self, q: float) -> float:
        """The q-quantile (0 < q ≤ 1) in seconds; 0 when empty."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                middle: float = _MIN_S * _GROWTH ** (index + 0.5)
                return min(max(middle, self.min_s), self.max_s)
        return self.max_s

    @property
    def mean_s(self) -> float:
        return self.total_s / self.count if self.count else 0.0


@dataclass
class Series:
    """One group of requests (all, one endpoint, those touching one shard)."""

    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    errors: int = 0
    client_errors: int = 0

    def record(self, seconds: float, status: int | None) -> None:
        self.latency.record(seconds)
        if status is None or status >= 500:
            self.errors += 1
        elif status >= 400:
            self.client_errors += 1

    def summary(self, elapsed_s: float) -> dict[str, Any]:
        n = self.latency.count
        return {
            "requests": n,
            "errors": self.errors,
            "error_rate": round(self.errors / n, 6) if n else 0.0,
            "client_errors": self.client_errors,
            "throughput_rps": round(n / elapsed_s, 3) if elapsed_s > 0 else 0.0,
            "latency_ms": {
                "p50": _ms(self.latency.percentile(0.50)),
                "p95": _ms(self.latency.percentile(0.95)),
                "p99": _ms(self.latency.percentile(0.99)),
                "mean": _ms(self.latency.mean_s),
                "max": _ms(self.latency.max_s),
            },
        }


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


@dataclass
class StepStats:
    """One load step: a concurrency (closed loop) or an arrival rate (open loop)."""

    index: int
    concurrency: int | None = None
    rate: float | None = None
    elapsed_s: float = 0.0
    all: Series = field(default_factory=Series)
    by_endpoint: dict[str, Series] = field(default_factory=dict)
    by_shard: dict[int, Series] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)

    def record(
        self, endpoint: str, shards: Iterable[int], seconds: float, status: int | None
    ) -> None:
        self.all.record(seconds, status)
        self.by_endpoint.setdefault(endpoint, Series()).record(seconds, status)
        for shard in shards:
            self.by_shard.setdefault(shard, Series()).record(seconds, status)
        key = str(status) if status is not None else "transport_error"
        self.statuses[key] = self.statuses.get(key, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.index,
            "concurrency": self.concurrency,
            "rate": self.rate,
            "duration_s": round(self.elapsed_s, 3),
            **self.all.summary(self.elapsed_s),
            "statuses": dict(sorted(self.statuses.items())),
            "by_endpoint": {
                name: s.summary(self.elapsed_s) for name, s in sorted(self.by_endpoint.items())
            },
            # "requests touching shard K": a multi-get or search counts for every shard it hit.
            "by_shard": {
                str(shard): s.summary(self.elapsed_s) for shard, s in sorted(self.by_shard.items())
            },
        }


@dataclass
class LoadReport:
    target: str
    mode: str  # "closed" or "open"
    keys: str
    mix: dict[str, float]
    shards: int
    steps: list[StepStats] = field(default_factory=list)
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "mode": self.mode,
            "keys": self.keys,
            "mix": self.mix,
            "shards": self.shards,
            "stopped_early": self.stopped_early,
            "steps": [s.to_dict() for s in self.steps],
        }


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=False))
    )


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [_row(header, widths), *(_row(r, widths) for r in rows)]


def _cells(label: list[str], s: dict[str, Any]) -> list[str]:
    lat = s["latency_ms"]
    return [
        *label,
        str(s["requests"]),
        f"{s['throughput_rps']:.1f}",
        f"{100 * s['error_rate']:.2f}",
        f"{lat['p50']:.1f}",
        f"{lat['p95']:.1f}",
        f"{lat['p99']:.1f}",
    ]


_METRICS = ["requests", "req/s", "err %", "p50 ms", "p95 ms", "p99 ms"]


def render_table(report: LoadReport) -> str:
    """The per-step table, then the same figures by endpoint and by shard touched."""
    steps = [s.to_dict() for s in report.steps]
    lines = [f"narrows load: {report.mode} loop against {report.target}, keys {report.keys}"]

    def level(step: dict[str, Any]) -> str:
        return (
            f"c={step['concurrency']}" if step["concurrency"] is not None else f"{step['rate']:g}/s"
        )

    lines += _table(
        ["step", "load", *_METRICS], [_cells([str(s["step"]), level(s)], s) for s in steps]
    )
    for title, key in (("by endpoint", "by_endpoint"), ("by shard touched", "by_shard")):
        rows = [
            _cells([str(s["step"]), name], part) for s in steps for name, part in s[key].items()
        ]
        if rows:
            lines += ["", title]
            lines += _table(
                ["step", "endpoint" if key == "by_endpoint" else "shard", *_METRICS], rows
            )
    return "\n".join(lines)
