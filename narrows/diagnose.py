"""`narrows diagnose`: the analysis' findings for a recent window, as a table or JSON.

The same engine the dashboard's Bottlenecks page runs (``dashboard.analysis.diagnose``),
fed by the same loader (``dashboard.loaders.analysis_inputs``) from the same sources, so
the command line and the dashboard never disagree. Like `narrows fault`, it finds a
running `narrows up` through ``<data-dir>/endpoints.json`` unless a URL is given.

stdout carries only the result (the table, or with ``--json`` the findings and nothing
else); progress and errors go to stderr. Exit 0 when the analysis ran, whatever it found;
1 when the backend cannot be reached (the message names the URL); 2 for a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import sys
import textwrap
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from narrows.endpoints import add_data_dir_argument

if TYPE_CHECKING:
    import pandas as pd

    from dashboard.analysis.diagnose import Diagnosis
    from dashboard.analysis.findings import Finding
    from dashboard.analysis.inputs import AnalysisInputs
    from dashboard.settings import DashboardSettings

__all__ = ["add_arguments", "format_table", "parse_since", "parse_until", "run"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
#: Shortest and longest window: a few seconds of traffic is too little to test anything,
#: and more than a week is more than a trace sample can speak for.
MIN_SINCE_S = 5.0
MAX_SINCE_S = 7 * 86_400.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("where the telemetry is (default: a running `narrows up`)")
    where.add_argument(
        "--query-url",
        help="the Narrows collector's query API (default $NARROWS_QUERY_URL, else the one "
        "endpoints.json in --data-dir names)",
    )
    add_data_dir_argument(where)
    where.add_argument(
        "--source",
        choices=["narrows", "prometheus+jaeger+loki"],
        default=None,
        help="telemetry backend (default $NARROWS_SOURCE or narrows)",
    )
    where.add_argument(
        "--prometheus-url", help="with prometheus+jaeger+loki: $NARROWS_PROMETHEUS_URL"
    )
    where.add_argument("--jaeger-url", help="with prometheus+jaeger+loki: $NARROWS_JAEGER_URL")
    where.add_argument("--loki-url", help="with prometheus+jaeger+loki: $NARROWS_LOKI_URL")
    where.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait for each backend answer (default $NARROWS_DASHBOARD_TIMEOUT or 5)",
    )
    what = parser.add_argument_group("what to analyse")
    what.add_argument(
        "--since",
        default="10m",
        help="how far back the window reaches: 30s, 10m, 2h, 1d (default 10m)",
    )
    what.add_argument(
        "--until",
        default=None,
        metavar="TIME",
        help="where the window ends: an ISO 8601 time (UTC unless it has an offset), "
        "e.g. 2026-11-26T03:10:00Z, or Unix seconds (default: now); with --since, "
        "an incident's window after the fact",
    )
    what.add_argument(
        "--route",
        help="only requests of this route, e.g. '/search' or 'GET /items/{item_id}' "
        "(shard and cache counters stay service-wide)",
    )
    what.add_argument(
        "--slo-availability",
        type=float,
        default=None,
        help="availability objective for burn rates (default $NARROWS_SLO_AVAILABILITY or 0.999)",
    )
    what.add_argument(
        "--slo-latency-ms",
        type=float,
        default=None,
        help="requests slower than this count against the SLO "
        "(default $NARROWS_SLO_LATENCY_MS or 250)",
    )
    what.add_argument(
        "--load-report",
        type=Path,
        help="a `narrows load --concurrency … --json` report: lets the saturation check "
        "compare live throughput with the capacity the sweep measured",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the findings as JSON on stdout (and nothing else); always all of them",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="table: also list the info findings that explain no alarm",
    )


def parse_since(text: str) -> float:
    """``30s``/``10m``/``2h``/``1d`` → seconds, or ValueError saying what is accepted."""
    match = _SINCE.match(text)
    if not match:
        raise ValueError(f"--since must be a duration like 30s, 10m, 2h or 1d; got {text!r}")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not MIN_SINCE_S <= seconds <= MAX_SINCE_S:
        raise ValueError(f"--since must be between 5s and 7d; got {text!r}")
    return seconds


#: How far past now --until may reach (clocks of the caller and this host may differ a bit).
MAX_FUTURE_S = 60.0


def parse_until(text: str | None, now: datetime | None = None) -> datetime:
    """``--until``: ISO 8601 (naive = UTC) or Unix seconds → an aware UTC time; None → now.
    ValueError says what is accepted."""
    now = now or datetime.now(UTC)
    if text is None or text.strip().lower() in ("", "now"):
        return now
    raw = text.strip()
    try:
        if re.fullmatch(r"\d+(\.\d+)?", raw):
            at = datetime.fromtimestamp(float(raw), UTC)
        else:
            at = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
            at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        raise ValueError(
            "--until must be an ISO 8601 time like 2026-11-26T03:10:00Z or Unix seconds; "
            f"got {text!r}"
        ) from None
    if (at - now).total_seconds() > MAX_FUTURE_S:
        raise ValueError(f"--until is in the future ({at:%Y-%m-%dT%H:%M:%SZ}); got {text!r}")
    return at


class _UsageError(Exception):
    """Bad options or no `narrows up` to talk to: exit 2 with the message."""


def _settings(args: argparse.Namespace) -> DashboardSettings:
    """The dashboard's settings (its ``NARROWS_*`` variables), overridden by the flags."""
    from dashboard.settings import DashboardSettings

    base = DashboardSettings.from_env()
    changes: dict[str, Any] = {}
    if args.source:
        changes["source"] = args.source
    for flag in ("prometheus_url", "jaeger_url", "loki_url"):
        value = getattr(args, flag)
        if value:
            if not str(value).startswith(("http://", "https://")):
                raise _UsageError(f"--{flag.replace('_', '-')} must be an http(s) URL")
            changes[flag] = str(value).rstrip("/")
    if args.timeout is not None:
        if not 0.1 <= args.timeout <= 600:
            raise _UsageError("--timeout must be between 0.1 and 600 seconds")
        changes["timeout_s"] = args.timeout
    if args.slo_availability is not None:
        if not 0.5 <= args.slo_availability < 1.0:
            raise _UsageError("--slo-availability must be within [0.5, 1), e.g. 0.999")
        changes["slo_availability"] = args.slo_availability
    if args.slo_latency_ms is not None:
        if not 0 < args.slo_latency_ms < 1e7:
            raise _UsageError("--slo-latency-ms must be a positive number of milliseconds")
        changes["slo_latency_ms"] = args.slo_latency_ms
    source = changes.get("source", base.source)
    if source == "narrows":
        changes["query_url"] = _query_url(args)
    return dataclasses.replace(base, **changes)


def _query_url(args: argparse.Namespace) -> str:
    """--query-url, else $NARROWS_QUERY_URL, else the running `narrows up`'s endpoints."""
    url = args.query_url or os.environ.get("NARROWS_QUERY_URL", "").strip()
    if url:
        if not url.startswith(("http://", "https://")):
            raise _UsageError(f"--query-url must be an http(s) URL; got {url!r}")
        return str(url).rstrip("/")
    from narrows.endpoints import Endpoints, EndpointsNotFound

    try:
        return Endpoints.read(args.data_dir).query.rstrip("/")
    except EndpointsNotFound as exc:
        raise _UsageError(str(exc)) from None


def _load_sweep(path: Path | None) -> pd.DataFrame | None:
    if path is None:
        return None
    from dashboard.loaders import sweep_from_load_report

    try:
        return sweep_from_load_report(path.read_text())
    except OSError as exc:
        raise _UsageError(f"--load-report: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise _UsageError(f"--load-report: {path}: {exc}") from None


def _describe_source(settings: DashboardSettings) -> str:
    if settings.source == "narrows":
        return f"the Narrows collector at {settings.query_url}"
    return f"Prometheus at {settings.prometheus_url} and Jaeger at {settings.jaeger_url}" + (
        f" (Loki at {settings.loki_url})" if settings.loki_url else ""
    )


def run(args: argparse.Namespace) -> int:
    def err(line: str) -> None:
        print(f"narrows diagnose: {line}", file=sys.stderr, flush=True)

    try:
        since_s = parse_since(args.since)
        until = parse_until(args.until)
        settings = _settings(args)
        sweep = _load_sweep(args.load_report)
    except (ValueError, _UsageError) as exc:
        err(str(exc))
        return 2

    from dashboard.analysis.diagnose import diagnose_report
    from dashboard.analysis.inputs import SloObjective, restrict_to_route
    from dashboard.loaders import analysis_inputs
    from dashboard.sources import SourceError, make_source
    from dashboard.sources.query import TimeWindow

    window = TimeWindow.last(since_s / 60.0, now=until)
    err(f"analysing {window.label()} from {_describe_source(settings)}")
    started = time.monotonic()
    try:
        source = make_source(settings)
        slo = SloObjective(
            availability=settings.slo_availability, latency_ms=settings.slo_latency_ms
        )
        inputs = analysis_inputs(source, window, slo, sweep)
    except SourceError as exc:
        err(f"cannot read telemetry from {exc.url}: {exc.reason}")
        return 1
    if args.route:
        try:
            inputs = restrict_to_route(inputs, args.route)
        except ValueError as exc:
            err(str(exc))
            return 2
    report = diagnose_report(inputs)
    err(
        f"{len(inputs.traces)} sampled and {len(inputs.slow_traces)} slow traces, "
        f"{len(report.findings)} findings in {time.monotonic() - started:.1f}s"
    )
    if args.json:
        from dashboard.analysis.findings import findings_to_json

        for line in report.skipped:
            err(f"skipped {line}")
        print(findings_to_json(report.findings))
        return 0
    width = shutil.get_terminal_size((120, 24)).columns
    print(format_table(report, inputs, width=width, show_info=args.all))
    return 0


# --- the table ---------------------------------------------------------------------------

_HEADERS = ("SEVERITY", "KIND", "SUBJECT", "IMPACT", "SUMMARY")
#: Subjects wrap beyond this many characters; a summary gets at least the minimum.
SUBJECT_WIDTH = 34
MIN_SUMMARY_WIDTH = 30


def _subject(f: Finding) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(f.subject.items())) or "(service)"


def _impact(f: Finding) -> str:
    value, unit = f.impact.value, f.impact.unit
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit == "error_share":
        return f"{value:.1%} err"
    return f"{value:.2g}× load"


def _ordered(findings: Sequence[Finding], show_info: bool) -> list[tuple[Finding, int]]:
    """Each root finding followed by the symptoms it explains (depth 1), in ranking order;
    without ``show_info``, only the alarms and their symptoms."""
    by_ref = {f.ref: f for f in findings}
    children: dict[str, list[Finding]] = {}
    for f in findings:
        cause = f.evidence.explained_by
        if cause is not None and cause in by_ref:
            children.setdefault(cause, []).append(f)
    out: list[tuple[Finding, int]] = []
    for f in findings:
        if f.evidence.explained_by is not None and f.evidence.explained_by in by_ref:
            continue
        if not f.is_alarm and not show_info:
            continue
        out.append((f, 0))
        out.extend((c, 1) for c in children.get(f.ref, ()))
    return out


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


def format_table(
    report: Diagnosis, inputs: AnalysisInputs, *, width: int = 120, show_info: bool = False
) -> str:
    """Findings as aligned columns; a symptom sits under its cause, marked ``└``; long
    subjects and summaries wrap within their columns so a line stays within ``width``.
    Info findings that explain no alarm are counted, and listed with ``show_info``."""
    rows = _ordered(report.findings, show_info)
    hidden = len(report.findings) - len(rows)
    lines: list[str] = []
    traces = f"{len(inputs.traces)} sampled + {len(inputs.slow_traces)} slow traces"
    if not rows:
        lines.append(
            f"nothing notable or critical ({traces})"
            + (f"; {hidden} info finding(s), --all lists them" if hidden else "")
        )
    else:
        cells = [
            (
                f.severity,
                ("└ " if depth else "") + f.kind,
                _subject(f),
                _impact(f),
                f.summary,
            )
            for f, depth in rows
        ]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(_HEADERS[:-1])]
        widths[2] = min(widths[2], SUBJECT_WIDTH)
        summary_width = max(MIN_SUMMARY_WIDTH, width - sum(widths) - 2 * len(widths))
        widths.append(summary_width)

        def emit(row: Sequence[str]) -> None:
            wrapped = [_wrap(text, w) for text, w in zip(row, widths, strict=True)]
            for i in range(max(map(len, wrapped))):
                parts = [(col[i] if i < len(col) else "") for col in wrapped]
                lines.append(
                    "  ".join(p.ljust(w) for p, w in zip(parts, widths, strict=True)).rstrip()
                )

        emit(_HEADERS)
        for c in cells:
            emit(c)
        alarms = sum(1 for f, _ in rows if f.is_alarm)
        roots = sum(1 for f, depth in rows if f.is_alarm and depth == 0)
        lines.append("")
        if alarms:
            lines.extend(
                _wrap(
                    f"{alarms} alarm(s), the {roots} root cause(s) first, each symptom (└) "
                    f"under its cause; {traces}. --json adds the evidence: trace ids and "
                    "the numbers behind each finding.",
                    width,
                )
            )
        else:
            lines.extend(_wrap(f"nothing notable or critical ({traces}); info only.", width))
        if hidden:
            lines.extend(_wrap(f"{hidden} more info finding(s): --all lists them.", width))
    for skipped in report.skipped:
        lines.extend(_wrap(f"not checked: {skipped}", width))
    return "\n".join(lines)
