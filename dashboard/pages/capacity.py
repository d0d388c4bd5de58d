"""Capacity: live throughput against Little's-law concurrency, and from a load sweep
(`narrows load --concurrency 1,2,4,… --json`) the Universal Scalability Law fit, the
capacity within the SLO and the replicas a target rate needs."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dashboard.analysis.capacity import capacity_plan, littles_law
from dashboard.components.charts import ERROR, OK, PALETTE, line_figure
from dashboard.components.findings import findings_list
from dashboard.loaders import sweep_from_load_report
from dashboard.sources.query import SpanFilter
from dashboard.state import current_window, diagnosis, guard, load, note, settings

config = settings()
st.title("Capacity")
window = current_window()

st.subheader("Live load")
with guard():
    frame = load.red(window, SpanFilter(kind="server"), group_by="service.name")
    note(frame)
    red = frame.data
    if red.empty:
        st.info("No requests in this window.")
    else:
        # Little's law: requests in the system = arrival rate × mean time in the system.
        live = red.assign(concurrency=red["rate"] * red["mean_ms"] / 1000.0)
        left, right = st.columns(2)
        left.plotly_chart(line_figure(live, "rate", "Throughput", "req/s"), key="throughput")
        right.plotly_chart(
            line_figure(live, "concurrency", "Requests in flight (Little's law)", "requests"),
            key="concurrency",
        )

st.subheader("Scalability from a load sweep")
upload = st.file_uploader(
    "Load report (`narrows load --concurrency 1,2,4,8,16 --json > sweep.json`)",
    type=["json"],
    key="sweep_file",
)
target = st.number_input("Target rate to plan for (req/s)", min_value=0.0, value=0.0, key="target")
if upload is None:
    st.caption("Upload a sweep to fit the Universal Scalability Law and size replicas.")
    st.stop()

try:
    raw = upload.getvalue().decode("utf-8", errors="replace")
    sweep = sweep_from_load_report(raw)
    plan = capacity_plan(sweep, target_rps=target or None, slo_p99_ms=config.slo_latency_ms)
except (ValueError, RuntimeError) as exc:
    st.error(f"Cannot fit this sweep: {exc}")
    st.stop()

fit = plan.fit
cols = st.columns(4)
cols[0].metric("Max throughput", f"{fit.max_throughput:.0f} req/s")
cols[1].metric(
    "Peak concurrency", "∞" if math.isinf(fit.peak_concurrency) else f"{fit.peak_concurrency:.1f}"
)
cols[2].metric(
    f"Within SLO p99 ≤ {config.slo_latency_ms:g} ms",
    "—" if plan.slo_throughput is None else f"{plan.slo_throughput:.0f} req/s",
)
cols[3].metric("Replicas for target", "—" if plan.replicas is None else str(plan.replicas))
st.caption(
    f"USL: λ = {fit.lam:.2f} ± {fit.lam_se:.2f} req/s per client, σ (contention) = "
    f"{fit.sigma:.4f} ± {fit.sigma_se:.4f}, κ (coherency) = {fit.kappa:.5f} ± {fit.kappa_se:.5f}; "
    f"R² {fit.r2:.3f}, mean error {fit.mape:.1%} over {fit.points} steps."
)
for n in plan.notes:
    st.caption(n)

n_max = max(float(sweep["concurrency"].max()) * 1.5, 2.0)
grid = np.linspace(1.0, n_max, 120)
fig = go.Figure()
fig.add_trace(
    go.Scatter(
        x=sweep["concurrency"],
        y=sweep["throughput_rps"],
        mode="markers",
        name="measured",
        marker={"color": OK, "size": 9},
    )
)
fig.add_trace(
    go.Scatter(
        x=grid,
        y=[fit.throughput(n) for n in grid],
        mode="lines",
        name="USL fit",
        line={"color": PALETTE[1], "width": 2},
    )
)
fig.add_trace(
    go.Scatter(
        x=grid,
        y=[fit.lam * n for n in grid],
        mode="lines",
        name="linear scaling",
        line={"color": PALETTE[2], "dash": "dot"},
    )
)
if plan.slo_concurrency is not None:
    fig.add_vline(
        x=plan.slo_concurrency,
        line={"color": ERROR, "dash": "dash"},
        annotation_text="SLO limit",
    )
fig.update_layout(
    title="Throughput vs concurrency",
    height=360,
    margin={"l": 10, "r": 10, "t": 40, "b": 10},
    xaxis_title="concurrent clients (N)",
    yaxis_title="req/s",
    legend={"orientation": "h", "y": -0.2},
)
st.plotly_chart(fig, key="usl")
st.dataframe(littles_law(sweep).round(3), hide_index=True, key="littles_law")

with guard():
    sweep_json = sweep.to_json()
    report = diagnosis(window, sweep_json)
    saturation = [f for f in report.findings if f.kind == "saturation"]
    if saturation:
        findings_list(saturation)
    else:
        st.caption("Live throughput is well below what the sweep says one instance sustains.")
