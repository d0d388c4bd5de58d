"""Overview: rate, errors and latency per route against the SLO, top findings, freshness."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from dashboard import params
from dashboard.components.charts import line_figure
from dashboard.components.findings import findings_list
from dashboard.components.sidebar import refresh_every
from dashboard.sources.query import SpanFilter, TimeWindow
from dashboard.state import current_window, diagnosis, guard, load, note, settings

config = settings()
st.title("Overview")


def _age(ns: int | None) -> str:
    if ns is None:
        return "no data"
    seconds = max(0.0, time.time() - ns / 1e9)
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _totals(red: pd.DataFrame, window: TimeWindow) -> pd.DataFrame:
    """Per route over the window: requests, rate, error %, count-weighted percentiles."""
    rows = []
    for group, g in red.groupby("group"):
        n = g["count"].sum()
        rows.append(
            {
                "route": group,
                "requests": int(n),
                "rate_per_s": round(n / window.seconds, 3),
                "error_pct": round(100 * g["errors"].sum() / n, 2) if n else 0.0,
                "p50_ms": round(float((g["p50_ms"] * g["count"]).sum() / n), 2),
                "p95_ms": round(float((g["p95_ms"] * g["count"]).sum() / n), 2),
                "p99_ms": round(float(g["p99_ms"].max()), 2),
            }
        )
    return pd.DataFrame(rows).sort_values("requests", ascending=False)


@st.fragment(run_every=refresh_every(config))
def live() -> None:
    window = current_window()
    st.caption(f"Window {window.label()}")
    with guard():
        fresh = load.freshness()
        cols = st.columns(len(fresh.newest_ns) + 1)
        for col, (signal, ns) in zip(cols, fresh.newest_ns.items(), strict=False):
            col.metric(f"Newest {signal}", _age(ns))
        pending = (fresh.detail.get("ingest") or {}).get("pending_batches")
        cols[-1].metric("Backlog", "—" if pending is None else f"{pending} batches")
    with guard():
        services = load.busiest_services(window)
        if not services:
            st.info("No services have sent telemetry yet.")
            return
        wanted, problem = params.choice(st.query_params, "service", services)
        if problem:
            st.warning(problem)
        service = st.selectbox(
            "Service",
            services,
            index=services.index(wanted) if wanted else 0,
            key="overview_service",
        )
        frame = load.red(window, SpanFilter(service=service, kind="server"), "span.name")
        red = frame.data
        note(frame)
        if red.empty:
            st.info(f"No requests to {service} in this window.")
            return
        st.dataframe(_totals(red, window), hide_index=True, key="routes")
        quantile = (
            st.segmented_control(
                "Latency percentile", ["p50", "p95", "p99"], default="p99", key="overview_q"
            )
            or "p99"
        )
        left, right = st.columns(2)
        left.plotly_chart(line_figure(red, "rate", "Request rate", "req/s"), key="rate")
        right.plotly_chart(
            line_figure(
                red,
                "error_rate",
                "Error rate",
                "% of requests",
                scale=100.0,
                slo=100 * (1 - config.slo_availability),
                slo_label=f"SLO budget {100 * (1 - config.slo_availability):.2g}%",
            ),
            key="errors",
        )
        st.plotly_chart(
            line_figure(
                red,
                f"{quantile}_ms",
                f"{quantile} latency",
                "ms",
                slo=config.slo_latency_ms,
                slo_label=f"SLO {config.slo_latency_ms:g} ms",
            ),
            key="latency",
        )


live()

st.subheader("Top findings")
with guard():
    report = diagnosis(current_window())
    if report.findings:
        findings_list(report.findings, limit=3, detailed=False)
        st.page_link("pages/bottlenecks.py", label="All findings and their evidence →")
    else:
        st.success("Nothing stands out in this window.")
