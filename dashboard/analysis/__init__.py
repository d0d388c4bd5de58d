"""Pure analysis over traces and data frames: no I/O, no Streamlit.

The entry point is ``diagnose(AnalysisInputs) -> list[Finding]``; docs/analysis.md
describes every detector, its statistic, thresholds and blind spots.
"""

from dashboard.analysis.capacity import CapacityPlan, UslFit, capacity_plan, fit_usl
from dashboard.analysis.critical_path import critical_path, self_times
from dashboard.analysis.diagnose import Diagnosis, diagnose, diagnose_report
from dashboard.analysis.findings import (
    KINDS,
    Evidence,
    Finding,
    Impact,
    findings_from_json,
    findings_to_json,
)
from dashboard.analysis.inputs import AnalysisInputs, SloObjective, inputs_from_traces, spans_frame
from dashboard.analysis.servicemap import ServiceMap, calls_frame, hops, service_map
from dashboard.analysis.time_share import where_time_goes

__all__ = [
    "KINDS",
    "AnalysisInputs",
    "CapacityPlan",
    "Diagnosis",
    "Evidence",
    "Finding",
    "Impact",
    "ServiceMap",
    "SloObjective",
    "UslFit",
    "calls_frame",
    "capacity_plan",
    "critical_path",
    "diagnose",
    "diagnose_report",
    "findings_from_json",
    "findings_to_json",
    "fit_usl",
    "hops",
    "inputs_from_traces",
    "self_times",
    "service_map",
    "spans_frame",
    "where_time_goes",
]
