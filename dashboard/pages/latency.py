"""Latency: a route's duration heatmap; select cells → the traces (and exemplars) in them,
and how requests that touched each shard or cache outcome compare."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import params
from dashboard.components.breakdown import by_cache_result, by_shard
from dashboard.components.charts import heatmap_figure
from dashboard.components.sidebar import refresh_every
from dashboard.sources.model import Histogram
from dashboard.sources.query import SpanFilter, TimeWindow, TraceQuery
from dashboard.state import current_window, guard, load, note, settings

config = settings()
st.title("Latency")

HTTP_METRIC = "http_server_request_duration_seconds"


def _region(hist: Histogram, window: TimeWindow, selection: Any) -> tuple[TimeWindow, float, float]:
    """The selected cells' time span and latency range (the whole window when none)."""
    points = (selection or {}).get("selection", {}).get("points", []) if selection else []
    cells = [p for p in points if isinstance(p.get("customdata"), list | tuple)]
    if not cells:
        return window, float(st.session_state.get("latency_floor", 0.0)), float("inf")
    times = [pd.Timestamp(p["x"]).tz_localize(UTC) if pd.Timestamp(p["x"]).tzinfo is None
             else pd.Timestamp(p["x"]) for p in cells]  # fmt: skip
    start = min(times).to_pydatetime()
    end = max(times).to_pydatetime() + timedelta(seconds=window.step_s)
    low = min(float(p["customdata"][0]) for p in cells)
    high = max(float(p["customdata"][1]) for p in cells)
    return TimeWindow(start, max(end, start + timedelta(seconds=1))), low, high


def _pick(label: str, options: list[str], param: str, key: str) -> str | None:
    wanted, problem = params.choice(st.query_params, param, options)
    if problem:
        st.warning(problem)
    if not options:
        return None
    index = options.index(wanted) if wanted in options else 0
    return st.selectbox(label, options, index=index, key=key)


with guard():
    services = load.busiest_services(current_window())
    service = _pick("Service", services, "service", "latency_service")
    routes = load.busiest_routes(service, current_window()) if service else []
    route = _pick("Route", routes, "route", "latency_route")
    if service is None or route is None:
        st.info("No server routes have been seen yet.")
        st.stop()

    @st.fragment(run_every=refresh_every(config))
    def heatmap() -> None:
        window = current_window()
        filt = SpanFilter(service=service, operation=route, kind="server")
        with guard():
            hist = load.latency(window, filt)
            note(hist)
            if hist.data.empty:
                st.info(f"No {route} requests in this window.")
                return
            st.plotly_chart(
                heatmap_figure(hist, f"{route} — request duration over time", window),
                key="heatmap",
                on_select="rerun",
                selection_mode=("box", "points"),
            )

    heatmap()
    window = current_window()
    hist = load.latency(window, SpanFilter(service=service, operation=route, kind="server"))
    bounds = [0.0, *hist.bounds_ms]
    floor, problem = params.number(st.query_params, "min_ms", 0, 1e7)
    if problem:
        st.warning(problem)
    if floor is not None and "latency_floor" not in st.session_state:
        # Snap to the bucket bound at or below the asked floor (the slider offers bounds).
        st.session_state["latency_floor"] = max(b for b in bounds if b <= floor)
    elif st.session_state.get("latency_floor", 0.0) not in bounds:
        st.session_state["latency_floor"] = 0.0
    st.select_slider(
        "Or show requests slower than (ms)",
        options=bounds,
        key="latency_floor",
        help="Used when no cells are selected in the heatmap (box- or click-select them).",
    )
    region, low, high = _region(hist, window, st.session_state.get("heatmap"))
    high_ms = None if high == float("inf") else high
    st.markdown(
        f"#### Requests in {low:g}–{'∞' if high_ms is None else f'{high_ms:g}'} ms, "
        f"{region.start:%H:%M:%S}–{region.end:%H:%M:%S} UTC"
    )
    query = TraceQuery(
        region,
        service=service,
        operation=route,
        duration_min_ms=low or None,
        duration_max_ms=high_ms,
        limit=100,
    )
    summaries = load.find_traces(query)
    if summaries:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "trace": f"traces?trace_id={s.trace_id}",
                        "start": datetime.fromtimestamp(s.start_ns / 1e9, UTC),
                        "duration_ms": round(s.duration_ms, 2),
                        "spans": s.span_count,
                        "errors": s.error_count,
                    }
                    for s in summaries
                ]
            ),
            hide_index=True,
            key="region_traces",
            column_config={
                "trace": st.column_config.LinkColumn("trace", display_text=r"trace_id=(\w{12})"),
            },
        )
    else:
        st.caption("No traces in this region.")

    st.markdown("#### Exemplars (metric samples linked to traces)")
    with guard():
        method, _, path = route.partition(" ")
        exemplars = [
            e
            for e in load.exemplars(region, HTTP_METRIC, {"http_route": path or method})
            if low <= e.value * 1000 <= (high_ms or float("inf"))
        ]
        if exemplars:
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "trace": f"traces?trace_id={e.trace_id}",
                            "value_ms": round(e.value * 1000, 2),
                            "time": datetime.fromtimestamp(e.time_ns / 1e9, UTC),
                        }
                        for e in exemplars
                    ]
                ),
                hide_index=True,
                key="exemplars",
                column_config={
                    "trace": st.column_config.LinkColumn("trace", display_text=r"trace_id=(\w{12})")
                },
            )
        else:
            st.caption("No exemplars in this region (the backend holds none for this route).")

    st.markdown("#### Where these requests went")
    traces = load.fetch_traces(query)
    left, right = st.columns(2)
    left.caption(f"Per shard ({len(traces)} traces; a request counts for each shard it queried)")
    left.dataframe(by_shard(traces), hide_index=True, key="by_shard")
    right.caption("Per cache outcome")
    right.dataframe(by_cache_result(traces), hide_index=True, key="by_cache")

    st.markdown("#### What is different about them")
    with guard():
        if low > 0 or high_ms is not None:
            diff = load.compare(
                region,
                SpanFilter(service=service, operation=route),
                SpanFilter(duration_min_ms=low or None, duration_max_ms=high_ms),
            )
            note(diff)
            st.dataframe(diff.data.head(30), hide_index=True, key="compare")
        else:
            st.caption("Select cells or a latency floor to compare them with the rest.")
