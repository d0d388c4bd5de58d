"""Hand-built spans and traces, and a one-call synthetic diagnosis, for the analysis tests."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from dashboard.analysis.diagnose import Diagnosis, diagnose_report
from dashboard.analysis.inputs import AnalysisInputs, inputs_from_traces, spans_frame
from dashboard.analysis.profiles import Profile, profiles
from dashboard.analysis.replicas import ejections_frame
from dashboard.sources.model import Span, Trace
from tests.support import synthetic_micro
from tests.support.synthetic import Fault, Scenario, generate

MS = 1_000_000
_ids = itertools.count(1)


def span(
    name: str,
    start_ms: float,
    end_ms: float,
    parent: str = "",
    *,
    sid: str | None = None,
    service: str = "demo",
    kind: int = 3,
    error: bool = False,
    trace_id: str = "t1",
    attrs: dict[str, Any] | None = None,
    instance: str | None = None,
) -> Span:
    """A span from ms offsets (``instance``: the process's ``service.instance.id``)."""
    resource: dict[str, Any] = {"service.name": service}
    if instance is not None:
        resource["service.instance.id"] = instance
    return Span(
        trace_id=trace_id,
        span_id=sid or f"{next(_ids):016x}",
        parent_span_id=parent,
        service=service,
        name=name,
        kind=kind,
        start_ns=int(start_ms * MS),
        end_ns=int(end_ms * MS),
        status_code=2 if error else 0,
        attributes=dict(attrs or {}),
        resource=resource,
    )


def server(
    route: str, start_ms: float, end_ms: float, *, sid: str = "root", status: int = 200, **kw: Any
) -> Span:
    """The entry SERVER span of a request to ``route`` ("GET /items/{id}")."""
    method, template = route.split(" ", 1)
    attrs = {
        "http.request.method": method,
        "http.route": template,
        "http.response.status_code": status,
        **kw.pop("attrs", {}),
    }
    return span(route, start_ms, end_ms, sid=sid, kind=2, attrs=attrs, error=status >= 500, **kw)


def trace(*spans: Span, trace_id: str = "t1") -> Trace:
    return Trace(trace_id, [s if s.trace_id == trace_id else _retrace(s, trace_id) for s in spans])


def _retrace(s: Span, trace_id: str) -> Span:
    return replace(s, trace_id=trace_id)


def run_scenario(
    *faults: Fault, inputs: dict[str, Any] | None = None, **scenario: Any
) -> Diagnosis:
    """Generate a window of demo traffic and diagnose it as a source would feed it: all
    traces aggregated, a random sample of 400 and the 20 slowest per route as traces."""
    traces = generate(Scenario(faults=faults, **scenario))
    seed = int(scenario.get("seed", 0))
    return diagnose_report(inputs_from_traces(traces, seed=seed, **(inputs or {})))


def run_micro(
    *faults: Fault, logs: bool = True, inputs: dict[str, Any] | None = None, **scenario: Any
) -> Diagnosis:
    """The same for the micro topology (gateway, catalog replicas, orders); ``logs`` feeds
    the callers' ``upstream ejected`` events to the analysis, as the sources do."""
    window = synthetic_micro.generate(synthetic_micro.MicroScenario(faults=faults, **scenario))
    ejections = ejections_frame(window.logs) if logs else None
    seed = int(scenario.get("seed", 0))
    return diagnose_report(
        inputs_from_traces(window.traces, seed=seed, ejections=ejections, **(inputs or {}))
    )


@dataclass(frozen=True)
class Prepared:
    """A scenario's inputs with the per-trace work done, for testing one detector."""

    inputs: AnalysisInputs
    typical: list[Profile]
    slow: list[Profile]
    spans: pd.DataFrame


def prepare(*faults: Fault, **scenario: Any) -> Prepared:
    inputs = inputs_from_traces(generate(Scenario(faults=faults, **scenario)))
    return Prepared(
        inputs, profiles(inputs.traces), profiles(inputs.slow_traces), spans_frame(inputs.traces)
    )


def zipkin_trace(fixtures: Path, path: str) -> Trace:
    """Zipkin v2 JSON → spans (µs → ns); a shared server span gets its own id under its
    client, and children of a shared id go to the span of their own service. The remote
    endpoint's service becomes ``peer.service``, as the collector's Zipkin receiver maps it."""
    raw: list[dict[str, Any]] = json.loads((fixtures / "zipkin" / path).read_text())
    spans: list[Span] = []
    shared = {s["id"]: s for s in raw if s.get("shared")}
    for s in raw:
        svc = s.get("localEndpoint", {}).get("serviceName", "unknown")
        sid, parent = s["id"], s.get("parentId", "")
        if s.get("shared"):
            sid, parent = s["id"] + "-server", s["id"]
        elif parent in shared and svc == shared[parent].get("localEndpoint", {}).get("serviceName"):
            parent += "-server"
        start = int(s.get("timestamp", 0)) * 1000
        spans.append(
            Span(
                s["traceId"],
                sid,
                parent,
                svc,
                s.get("name", ""),
                {"CLIENT": 3, "SERVER": 2}.get(s.get("kind", ""), 1),
                start,
                start + int(s.get("duration", 0)) * 1000,
                0,
                _zipkin_attrs(s),
            )
        )
    return Trace(raw[0]["traceId"], spans)


def _zipkin_attrs(s: dict[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = dict(s.get("tags", {}))
    peer = s.get("remoteEndpoint", {}).get("serviceName")
    if peer:
        attrs["peer.service"] = peer
    return attrs
