"""What a 10,000-span trace costs the trace page: capped waterfall vs drawing every span.

`make bench BENCH=dashboard_trace`. The page computes the critical path and self times over
all spans, orders them, and draws at most MAX_SPANS bars; the browser then has to lay out
the figure's JSON. Both variants are built side by side in one run (median of 5).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from dashboard.analysis.critical_path import critical_time_by_span, self_times, span_tree
from dashboard.components.waterfall import MAX_SPANS, ordered_spans, waterfall_figure
from dashboard.sources.model import Span, Trace

N_SPANS = 10_000


def _trace() -> Trace:
    tid = "ab" * 16
    spans = [Span(tid, "r" * 16, "", "bulk", "batch job", 2, 0, 200_000_000, 0)]
    n = 1
    for i in range(99):
        mid = f"m{i:015d}"
        spans.append(Span(tid, mid, "r" * 16, "bulk", f"step {i % 7}", 1,
                          i * 2_000_000, i * 2_000_000 + 1_900_000, 0))  # fmt: skip
        n += 1
        for j in range(101):
            if n >= N_SPANS:
                break
            start = i * 2_000_000 + j * 10_000
            spans.append(Span(tid, f"l{n:015d}", mid, "bulk", "leaf", 3, start, start + 9_000, 0))
            n += 1
    return Trace(tid, spans)


def _median_ms(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main(argv: list[str]) -> int:
    trace = _trace()
    assert len(trace.spans) == N_SPANS
    order = ordered_spans(trace)

    def analysis() -> None:
        tree = span_tree(trace)
        critical_time_by_span(tree)
        self_times(tree)

    capped = waterfall_figure(trace, (), order)
    full_order = order
    import dashboard.components.waterfall as wf

    saved, wf.MAX_SPANS = wf.MAX_SPANS, N_SPANS  # the uncapped variant, for comparison only
    try:
        full = waterfall_figure(trace, (), full_order)
        full_ms = _median_ms(lambda: waterfall_figure(trace, (), full_order).to_json())
    finally:
        wf.MAX_SPANS = saved
    capped_ms = _median_ms(lambda: waterfall_figure(trace, (), order).to_json())
    print(f"trace of {N_SPANS} spans (median of 5, this machine)")
    print(
        f"  order spans (tree walk)             {_median_ms(lambda: ordered_spans(trace)):8.1f} ms"
    )
    print(f"  critical path + self time           {_median_ms(analysis):8.1f} ms")
    print(f"  waterfall, capped at {MAX_SPANS} bars      {capped_ms:8.1f} ms  "
          f"{len(capped.to_json()) / 1e3:8.0f} kB JSON")  # fmt: skip
    print(f"  waterfall, all {N_SPANS} bars           {full_ms:8.1f} ms  "
          f"{len(full.to_json()) / 1e3:8.0f} kB JSON")  # fmt: skip
    print(f"capped: {full_ms / capped_ms:.1f}x faster to build, "
          f"{len(full.to_json()) / len(capped.to_json()):.0f}x less for the browser")  # fmt: skip
    return 0
