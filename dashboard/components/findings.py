"""Findings from the analysis as cards: summary, severity, impact, evidence links."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from dashboard.analysis.findings import Finding

__all__ = ["finding_card", "findings_list"]

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
        unit = {"ms": "ms", "error_share": "of requests", "load_ratio": "× fair share"}[
            f.impact.unit
        ]
        value = (
            f"{f.impact.value:.1%}" if f.impact.unit == "error_share" else f"{f.impact.value:.3g}"
        )
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
                st.json(f.to_dict()["evidence"]["aggregate"], expanded=False)


def _subject(f: Finding) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(f.subject.items())) or "service"


def findings_list(
    findings: Sequence[Finding], *, limit: int | None = None, detailed: bool = True
) -> None:
    shown = list(findings)[:limit] if limit else list(findings)
    for f in shown:
        finding_card(f, detailed=detailed)
