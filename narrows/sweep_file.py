"""Load sweeps on disk: `narrows capacity --save` writes them and `--from` reads them back.

A sweep is one row per closed-loop step (the analysis' ``SWEEP_COLUMNS`` plus the mean
latency, for Little's law). CSV holds exactly those rows; JSON holds a `narrows load --json`
report, so the dashboard's Capacity page accepts the same file. Reading also accepts
`narrows capacity --json` output, whose ``steps`` carry the same figures flat.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["FIELDS", "SweepFileError", "read_sweep", "sweep_from_report", "write_sweep"]

#: Columns of a saved sweep, in order; ``mean_ms``, ``error_rate``, ``requests`` and
#: ``duration_s`` are optional when reading.
FIELDS = (
    "concurrency",
    "throughput_rps",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "mean_ms",
    "error_rate",
    "requests",
    "duration_s",
)
_REQUIRED = FIELDS[:5]
_LATENCY = {"p50_ms": "p50", "p95_ms": "p95", "p99_ms": "p99", "mean_ms": "mean"}


class SweepFileError(Exception):
    """A sweep file that cannot be read (the message names the file and what is wrong)."""


def _number(value: object, field: str, where: str) -> float:
    if isinstance(value, bool):
        raise SweepFileError(f"{where}: {field} must be a number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SweepFileError(f"{where}: {field} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise SweepFileError(f"{where}: {field} must be a finite number ≥ 0, got {value!r}")
    return number


def _row(step: Mapping[str, Any], where: str) -> dict[str, float]:
    """One step, flat (CSV, `narrows capacity --json`) or nested (`narrows load --json`)."""
    latency = step.get("latency_ms")
    flat: dict[str, Any] = dict(step)
    if isinstance(latency, Mapping):
        flat.update({col: latency.get(key) for col, key in _LATENCY.items()})
    missing = [f for f in _REQUIRED if flat.get(f) in (None, "")]
    if missing:
        raise SweepFileError(f"{where}: missing {', '.join(missing)}")
    row = {f: _number(flat[f], f, where) for f in FIELDS if flat.get(f) not in (None, "")}
    if row["concurrency"] <= 0:
        raise SweepFileError(f"{where}: concurrency must be positive")
    if row.get("error_rate", 0.0) > 1:
        raise SweepFileError(f"{where}: error_rate is a share, 0 … 1")
    return row


def _frame(rows: list[dict[str, float]], path: Path) -> pd.DataFrame:
    if not rows:
        raise SweepFileError(f"{path}: no closed-loop steps in it")
    frame = pd.DataFrame(rows)
    if "error_rate" not in frame.columns:
        frame["error_rate"] = 0.0
    return frame.sort_values("concurrency", kind="stable").reset_index(drop=True)


def sweep_from_report(report: Mapping[str, Any], source: str = "report") -> pd.DataFrame:
    """A load report (or `narrows capacity --json` output) → one row per closed-loop step;
    open-loop steps (a ``rate`` and no ``concurrency``) are skipped."""
    steps = report.get("steps")
    if not isinstance(steps, list):
        raise SweepFileError(f"{source}: not a load sweep (no steps list)")
    rows = []
    for i, step in enumerate(steps, 1):
        if not isinstance(step, Mapping):
            raise SweepFileError(f"{source}: step {i} is not an object")
        if step.get("concurrency") is None:
            continue
        rows.append(_row(step, f"{source}, step {i}"))
    return _frame(rows, Path(source))


def read_sweep(path: Path) -> pd.DataFrame:
    """A sweep saved as CSV or JSON (by its suffix; anything not ``.json`` is CSV)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SweepFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SweepFileError(f"{path} is not a text file") from None
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise SweepFileError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(doc, Mapping):
            raise SweepFileError(f"{path}: not a load sweep (expected a JSON object)")
        return sweep_from_report(doc, str(path))
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    missing = [f for f in _REQUIRED if f not in header]
    if missing:
        raise SweepFileError(
            f"{path}: CSV needs the columns {', '.join(_REQUIRED)}; missing {', '.join(missing)}"
        )
    rows = [_row(line, f"{path}, line {n}") for n, line in enumerate(reader, 2)]
    return _frame(rows, path)


def _load_report_shape(sweep: pd.DataFrame) -> dict[str, Any]:
    """The minimal `narrows load --json` shape the dashboard reads, from sweep rows."""
    steps = []
    for i, row in enumerate(sweep.to_dict("records"), 1):
        step: dict[str, Any] = {"step": i, "concurrency": row["concurrency"], "rate": None}
        for field in ("duration_s", "requests", "error_rate", "throughput_rps"):
            if field in row and not pd.isna(row[field]):
                step[field] = row[field]
        step["latency_ms"] = {
            key: row[col] for col, key in _LATENCY.items() if col in row and not pd.isna(row[col])
        }
        steps.append(step)
    return {"mode": "closed", "steps": steps}


def write_sweep(path: Path, sweep: pd.DataFrame, report: Mapping[str, Any] | None = None) -> None:
    """CSV (the sweep rows) or JSON (``report`` when the sweep was just run, with its per
    endpoint and per shard figures; otherwise the same rows in the load report's shape)."""
    try:
        if path.suffix.lower() == ".json":
            doc = dict(report) if report is not None else _load_report_shape(sweep)
            path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
            return
        columns = [f for f in FIELDS if f in sweep.columns]
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(columns)
            for row in sweep[columns].itertuples(index=False):
                writer.writerow(["" if pd.isna(v) else f"{float(v):.10g}" for v in row])
    except OSError as exc:
        raise SweepFileError(f"cannot write {path}: {exc.strerror or exc}") from None
