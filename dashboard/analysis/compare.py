"""What is different about a selection (e.g. the slow requests) compared with a baseline,
attribute by attribute — Honeycomb BubbleUp's question, answered with plain statistics.

Every column is an attribute. Categorical ones (strings, booleans) are compared by their
value distributions: the score is the total variation distance (half the sum of absolute
share differences, 0..1), the test a chi-square on the value × group table, and the value
most over-represented in the selection is named. Numeric ones are compared by the
two-sample Kolmogorov-Smirnov statistic (also 0..1) with its p-value and both medians.
Columns that identify rows (ids, timestamps) carry no signal and are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from dashboard.analysis.stats import holm

__all__ = ["AttributeDifference", "rank_attributes", "slow_selection"]

SKIP = frozenset(
    {"trace_id", "span_id", "parent_span_id", "start_ns", "trace_duration_ms", "url_path"}
)
MISSING = "(missing)"
#: A categorical attribute with more distinct values than this is an identifier.
MAX_CATEGORIES = 50


@dataclass(frozen=True)
class AttributeDifference:
    attribute: str
    kind: str  # "categorical" | "numeric"
    score: float
    p_value: float
    #: Categorical: the value most over-represented in the selection and its shares.
    #: Numeric: the medians.
    value: str | None
    selection: float
    baseline: float

    def describe(self) -> str:
        if self.kind == "categorical":
            return (
                f"{self.attribute}={self.value}: {self.selection:.0%} of the selection vs "
                f"{self.baseline:.0%} of the baseline"
            )
        return f"{self.attribute}: median {self.selection:.3g} vs {self.baseline:.3g}"


def _categorical(a: pd.Series, b: pd.Series, name: str) -> AttributeDifference | None:
    sa, sb = (
        a.astype(object).fillna(MISSING).astype(str),
        b.astype(object).fillna(MISSING).astype(str),
    )
    pa, pb = sa.value_counts(normalize=True), sb.value_counts(normalize=True)
    values = pa.index.union(pb.index)
    if len(values) < 2 or len(values) > MAX_CATEGORIES:
        return None
    pa, pb = pa.reindex(values, fill_value=0.0), pb.reindex(values, fill_value=0.0)
    diff = pa - pb
    table = np.vstack(
        [
            sa.value_counts().reindex(values, fill_value=0),
            sb.value_counts().reindex(values, fill_value=0),
        ]
    )
    table = table[:, table.sum(axis=0) > 0]
    p = float(sps.chi2_contingency(table)[1]) if table.shape[1] > 1 else 1.0
    top = str(diff.idxmax())
    return AttributeDifference(
        name, "categorical", float(0.5 * diff.abs().sum()), p, top, float(pa[top]), float(pb[top])
    )


def _numeric(a: pd.Series, b: pd.Series, name: str) -> AttributeDifference | None:
    xa, xb = a.dropna().to_numpy(float), b.dropna().to_numpy(float)
    if len(xa) < 2 or len(xb) < 2:
        return None
    res = sps.ks_2samp(xa, xb)
    return AttributeDifference(
        name,
        "numeric",
        float(res.statistic),
        float(res.pvalue),
        None,
        float(np.median(xa)),
        float(np.median(xb)),
    )


def rank_attributes(
    selection: pd.DataFrame, baseline: pd.DataFrame, columns: Iterable[str] | None = None
) -> list[AttributeDifference]:
    """Attributes ordered by how differently they are distributed, most different first;
    p-values are Holm-corrected over the attributes compared."""
    cols = [c for c in (columns or selection.columns) if c in baseline.columns and c not in SKIP]
    out: list[AttributeDifference] = []
    for c in cols:
        a, b = selection[c], baseline[c]
        if a.isna().all() and b.isna().all():
            continue
        numeric = pd.api.types.is_numeric_dtype(a) and not pd.api.types.is_bool_dtype(a)
        diff = _numeric(a, b, c) if numeric else _categorical(a, b, c)
        if diff is not None:
            out.append(diff)
    adjusted = holm([d.p_value for d in out])
    out = [
        AttributeDifference(d.attribute, d.kind, d.score, p, d.value, d.selection, d.baseline)
        for d, p in zip(out, adjusted, strict=True)
    ]
    return sorted(out, key=lambda d: (-d.score, d.p_value, d.attribute))


def slow_selection(
    spans: pd.DataFrame, name: str, quantile: float = 0.9
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spans named ``name`` split at their ``quantile`` duration: (slowest, the rest)."""
    group = spans[spans["name"] == name]
    cut = group["duration_ms"].quantile(quantile)
    return group[group["duration_ms"] > cut], group[group["duration_ms"] <= cut]
