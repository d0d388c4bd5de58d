"""Findings from the analysis as cards: summary, severity, impact, evidence links."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.analysis.findings import Finding
from dashboard.components.charts import HIGHLIGHT, OK

__all__ = ["finding_card", "findings_list"]

#: How each impact unit reads after its value ("12 ms on …", "33.3% of the replicas …").
_UNITS = {
    "ms": "ms",
    "error_share": "of requests",
    "load_ratio": "×",
    "capacity_share": "of the replicas",
}
_ICON = {
    "critical": ":red[:material/error:]",
    "notable": ":orange[:material/warning:]",
    "info": ":blue[:material/info:]",
}


def finding_card(f: Finding, *, detailed: bool = True) -> None:
    icon = _ICON.get(f.severity, "•")
    with st.container(border=True):
        st.markdown(f"{icon} **{f.kind.replace('_', ' ')}** · {_subject(f)} · *{f.severity}*")
        st.write(f.summary)
        unit = _UNITS.get(f.impact.unit, f.impact.unit)
        share = f.impact.unit in ("error_share", "capacity_share")
        value = f"{f.impact.value:.1%}" if share else f"{f.impact.value:.3g}"
        st.caption(
            f"impact {value} {unit} on {f.impact.on} · score {f.impact.score:.2f} · "
            f"confidence {f.confidence:.0%}"
        )
        if f.evidence.explained_by:
            st.caption(f"explained by: {f.evidence.explained_by}")
        if not detailed:
            return
        if f.evidence.explains:
            st.caption("explains: " + "; ".join(f.evidence.explains))
        if f.evidence.trace_ids:
            links = " · ".join(
                f"[{tid[:12]}](traces?trace_id={tid})" for tid in f.evidence.trace_ids[:8]
            )
            st.markdown(f"Example traces: {links}")
        for n in f.evidence.notes:
            st.caption(n)
        if f.evidence.aggregate:
            with st.expander("evidence"):
                aggregate = f.to_dict()["evidence"]["aggregate"]
                for name, value in aggregate.items():
                    table = _records(value)
                    if table is None:
                        continue
                    chart = evidence_chart(table, f.subject, name)
                    if chart is not None:
                        st.plotly_chart(chart, key=f"evidence-{f.ref}-{name}")
                    st.dataframe(table, hide_index=True)
                scalars = {k: v for k, v in aggregate.items() if _records(v) is None}
                if scalars:
                    st.json(scalars, expanded=False)


#: Columns worth a bar chart, in order of preference.
_PREFERRED = ("p95_ms", "mean_ms", "p50_ms", "error_rate", "queries", "share", "requests")


def _records(value: object) -> pd.DataFrame | None:
    """A list of flat records (e.g. per-shard rows) as a table, else None."""
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        return pd.DataFrame(value)
    return None


def evidence_chart(table: pd.DataFrame, subject: dict[str, str], name: str) -> go.Figure | None:
    """Bars of the most telling numeric column per row, the finding's subject highlighted."""
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    labels = [c for c in table.columns if c not in numeric]
    column = next((c for c in _PREFERRED if c in numeric), numeric[0] if numeric else None)
    if column is None or not labels or len(table) > 50:
        return None
    label = labels[0]
    wanted = set(subject.values())
    colours = [HIGHLIGHT if str(v) in wanted else OK for v in table[label]]
    fig = go.Figure(go.Bar(x=table[label].astype(str), y=table[column], marker_color=colours))
    fig.update_layout(
        title=f"{name}: {column} by {label}",
        height=240,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    fig.update_xaxes(type="category", title=label)
    return fig


def _subject(f: Finding) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(f.subject.items())) or "service"


def findings_list(
    findings: Sequence[Finding], *, limit: int | None = None, detailed: bool = True
) -> None:
    shown = list(findings)[:limit] if limit else list(findings)
    for f in shown:
        finding_card(f, detailed=detailed)
