"""How long ``diagnose`` takes on one window, next to the parse it always follows.

A source fetches a few hundred traces as OTLP JSON and parses them before the analysis
runs; the ratio says whether the analysis or the fetch dominates a dashboard refresh.
Measured side by side in one run on the same synthetic demo traces:

1. ``parse``: ``json.loads`` + ``parse_otlp_traces`` of the sampled and slow traces;
2. ``profiles``: critical path + self-time of each of those traces;
3. ``diagnose``: every detector, on inputs with aggregates over the whole window;
4. ``chain``: critical path of one 10 000-span trace.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from dashboard.analysis.critical_path import critical_path
from dashboard.analysis.diagnose import diagnose_report
from dashboard.analysis.inputs import inputs_from_traces
from dashboard.analysis.profiles import profiles
from dashboard.sources.model import Span, Trace, parse_otlp_traces
from tests.support.synthetic import Fault, Scenario, generate

REPEATS = 5


def _otlp(traces: list[Trace]) -> str:
    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, float):
            return {"doubleValue": v}
        return {"stringValue": str(v)}

    spans = [
        {
            "traceId": s.trace_id,
            "spanId": s.span_id,
            "parentSpanId": s.parent_span_id,
            "name": s.name,
            "kind": s.kind,
            "startTimeUnixNano": str(s.start_ns),
            "endTimeUnixNano": str(s.end_ns),
            "status": {"code": s.status_code},
            "attributes": [{"key": k, "value": value(v)} for k, v in s.attributes.items()],
        }
        for t in traces
        for s in t.spans
    ]
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "demo"}}]}
    return json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]})


def _time(fn: Callable[[], object]) -> float:
    runs = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main(argv: list[str]) -> int:
    traces = generate(Scenario(seed=1, faults=(Fault("slow_shard", {"shard": 2, "delay_ms": 20}),)))
    inputs = inputs_from_traces(traces)
    fetched = list(inputs.traces) + list(inputs.slow_traces)
    text = _otlp(fetched)
    n_spans = sum(len(t.spans) for t in fetched)
    chain = Trace(
        "c",
        [Span("c", "s0", "", "demo", "s0", 2, 0, 20_000, 0)]
        + [
            Span("c", f"s{i}", f"s{i - 1}", "demo", f"s{i}", 1, i, 20_000 - i, 0)
            for i in range(1, 10_000)
        ],
    )
    parse = _time(lambda: parse_otlp_traces(json.loads(text)))
    prof = _time(lambda: profiles(fetched))
    diag = _time(lambda: diagnose_report(inputs))
    long = _time(lambda: critical_path(chain))
    print(f"window: {len(traces)} requests; fetched {len(fetched)} traces, {n_spans} spans")
    print(f"parse     {parse * 1000:8.1f} ms   1.00×")
    print(
        f"profiles  {prof * 1000:8.1f} ms   {prof / parse:5.2f}×  ({n_spans / prof:,.0f} spans/s)"
    )
    print(f"diagnose  {diag * 1000:8.1f} ms   {diag / parse:5.2f}×")
    print(f"chain     {long * 1000:8.1f} ms   (critical path of one 10 000-span trace)")
    return 0
