"""Small statistical helpers the detectors share (scipy does the heavy lifting).

Every detector asks two questions: is the difference *significant* (a test, with the
p-values of all subjects it tried corrected for multiple comparisons by Holm's method),
and is it *large enough to matter* (an effect size)? Only both together raise an alarm:
with thousands of spans a 2 % difference is significant and still not a finding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = [
    "ALPHA",
    "MIN_SAMPLES",
    "binom_greater",
    "confidence_from_p",
    "holm",
    "mann_whitney_greater",
    "shifted_later",
    "typical_mean",
    "weighted_quantile",
]

Samples = Sequence[float] | np.ndarray | pd.Series

#: Family-wise significance level after Holm's correction.
ALPHA = 0.01
#: Fewer observations than this in a group: no test, no alarm.
MIN_SAMPLES = 8


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given), monotone and ≤ 1."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def mann_whitney_greater(x: Samples, y: Samples) -> float:
    """p-value that values in ``x`` tend to be larger than in ``y`` (1.0 when too few)."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    xa, ya = xa[np.isfinite(xa)], ya[np.isfinite(ya)]
    if len(xa) < MIN_SAMPLES or len(ya) < MIN_SAMPLES:
        return 1.0
    if np.ptp(np.concatenate([xa, ya])) == 0:
        return 1.0
    return float(sps.mannwhitneyu(xa, ya, alternative="greater").pvalue)


def binom_greater(k: int, n: int, p: float) -> float:
    """p-value that ``k`` successes in ``n`` trials exceed rate ``p``."""
    if n <= 0:
        return 1.0
    p = min(max(p, 1e-9), 1 - 1e-9)
    return float(sps.binomtest(int(k), int(n), p, alternative="greater").pvalue)


def confidence_from_p(p: float, n: int, n_full: int = 200) -> float:
    """A 0..1 confidence: 1 − p, discounted while the sample is small."""
    size = math.sqrt(min(1.0, n / n_full))
    return round(max(0.0, min(1.0, (1.0 - p) * size)), 3)


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The q-quantile of a weighted sample (step interpolation)."""
    if len(values) == 0 or float(np.sum(weights)) <= 0:
        return float("nan")
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = np.cumsum(w) / np.sum(w)
    i = min(int(np.searchsorted(cum, q, side="left")), len(v) - 1)
    return float(v[i])


def shifted_later(
    series: pd.Series, *, ratio: float, min_delta: float
) -> tuple[bool, float, float]:
    """Did a time-ordered series rise in its last third compared with its first third?

    Returns (rose, earlier median, later median); 'rose' needs a Mann-Whitney p < ALPHA,
    a ratio ≥ ``ratio`` and an absolute rise ≥ ``min_delta``.
    """
    v = series.dropna().to_numpy(dtype=float)
    third = len(v) // 3
    if third < 3:
        return False, float("nan"), float("nan")
    early, late = v[:third], v[-third:]
    e, lt = float(np.median(early)), float(np.median(late))
    p = float(sps.mannwhitneyu(late, early, alternative="greater").pvalue)
    return (p < ALPHA and lt >= ratio * e and lt - e >= min_delta), e, lt


#: Share of each tail ``typical_mean`` leaves out.
TRIM = 0.2


def typical_mean(x: Samples) -> float:
    """The mean of the middle 60 % (20 % trimmed off each tail; NaN when empty).

    For effect sizes on latency: a busy host stalls a few calls of *every* group for tens
    of milliseconds, and those stalls dominate a plain mean and shrink every ratio; a
    median ignores a slowdown that hits only part of the calls (a replica slow on its
    database queries while its cache hits stay fast). The trimmed mean keeps the second
    and drops the first."""
    values = np.asarray(x, dtype=float)
    values = values[np.isfinite(values)]
    return float(sps.trim_mean(values, TRIM)) if len(values) else float("nan")
