"""Query latency at scale: generates N spans with the demo's attribute shape in DuckDB SQL
(bounded time, no Python loops), then times each question the dashboard asks.

``python -m benchmarks query`` (10 M spans) or
``python -c "from benchmarks.query import main; main(['--spans', '2000000'])"``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from collector.query.aggregates import _latency, _red
from collector.query.compare import compare as _compare
from collector.query.params import Bounds, format_ns
from collector.query.selftime import operations as _operations
from collector.query.signals import _logs
from collector.store import reader
from collector.store.schema import create_schema

HOUR = 3_600_000_000_000


def generate(conn: duckdb.DuckDBPyConnection, n: int, end_ns: int) -> None:
    """``n`` spans over the hour before ``end_ns``: traces of 1 server span + 4 children."""
    traces = n // 5
    conn.execute(
        f"""
        INSERT INTO spans BY NAME
        WITH t AS (
            SELECT i AS ti, (hash(i)::UHUGEINT << 64) | hash(i * 7 + 1)::UHUGEINT AS trace_id,
                   ? - 3600000000000 + (i * 3600000000000 // {traces}) AS t0,
                   1000000 + hash(i * 3) % 200000000 AS dur
            FROM range({traces}) r(i)
        )
        SELECT t.trace_id, hash(t.ti * 11 + c)::UBIGINT AS span_id,
               CASE WHEN c = 0 THEN 0 ELSE hash(t.ti * 11)::UBIGINT END AS parent_span_id,
               'demo' AS service_name,
               CASE WHEN c = 0 THEN 'GET ' || (['/items/{{key}}','/items','/search','/checkout','/multi'])[1 + t.ti % 5]
                    WHEN c = 1 THEN 'cache.get items' ELSE 'SELECT items' END AS name,
               CASE WHEN c = 0 THEN 2 ELSE 3 END AS kind,
               t.t0 + c * 1000 AS start_ns, t.t0 + (CASE WHEN c = 0 THEN t.dur ELSE t.dur // 2 END) AS end_ns,
               CASE WHEN c = 0 THEN t.dur ELSE t.dur // 2 - c * 1000 END AS duration_ns,
               CASE WHEN c = 0 AND t.ti % 50 = 0 THEN 2 ELSE 0 END AS status_code,
               CASE WHEN c = 0 THEN (['/items/{{key}}','/items','/search','/checkout','/multi'])[1 + t.ti % 5] END AS http_route,
               CASE WHEN c = 0 THEN 'GET' END AS http_method,
               CASE WHEN c = 0 THEN (CASE WHEN t.ti % 50 = 0 THEN 500 ELSE 200 END) END AS http_status_code,
               CASE WHEN c >= 2 THEN ((t.ti + c) % 4)::VARCHAR END AS app_shard_id,
               CASE WHEN c = 1 THEN t.ti % 5 <> 0 END AS app_cache_hit,
               CASE WHEN c >= 2 THEN 'sqlite' END AS db_system,
               CASE WHEN c >= 2 THEN (hash(t.ti) % 5000) / 1000.0 END AS app_pool_wait_ms,
               [{{'k': 'url.scheme', 't': 1, 'v': 'http'}}]::STRUCT(k VARCHAR, t UTINYINT, v VARCHAR)[] AS attributes,
               1 AS resource_id, 1 AS scope_id,
               t.t0 + 2000000000 AS received_ns
        FROM t, range(5) c(c)
        ORDER BY received_ns
        """,
        [end_ns],
    )
    conn.execute(
        "INSERT INTO trace_index SELECT trace_id, min(received_ns), max(received_ns),"
        " min(start_ns), max(end_ns) FROM spans GROUP BY trace_id"
    )
    conn.execute(
        "INSERT INTO resources VALUES (1, 'demo', [{'k': 'service.name', 't': 1, 'v': 'demo'}], 0)"
    )
    conn.execute("INSERT INTO scopes VALUES (1, 'narrows.demo', '', [], 0)")
    conn.execute("CHECKPOINT")


def _time(fn: Callable[[], Any], repeat: int = 5) -> tuple[float, float]:
    """Best wall and best CPU milliseconds of ``repeat`` runs (CPU: all DuckDB threads; on a
    shared machine the wall time also measures the neighbours)."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best * 1000, best_cpu * 1000


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.query")
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    path = Path(tempfile.mkdtemp(prefix="narrows-qbench-")) / "bench.duckdb"
    conn = duckdb.connect(str(path), config={"threads": args.threads})
    create_schema(conn)
    end = time.time_ns()
    t0 = time.perf_counter()
    generate(conn, args.spans, end)
    gen_s = time.perf_counter() - t0
    size = path.stat().st_size
    cur = conn.cursor()
    bounds = Bounds(max_range_ns=31 * 24 * HOUR)
    hour = {"start": format_ns(end - HOUR), "end": format_ns(end)}
    tid = int(cur.execute("SELECT trace_id FROM trace_index LIMIT 1 OFFSET 12345").fetchone()[0])  # type: ignore[index]
    cases: list[tuple[str, Callable[[], Any]]] = [
        (
            "RED by route per minute over 1 h",
            lambda: _red(
                cur, {**hour, "groupBy": "http.route", "step": "60s", "kind": "server"}, bounds, end
            ),
        ),
        (
            "p99 by shard over 1 h",
            lambda: _red(
                cur,
                {**hour, "groupBy": "app.shard.id", "step": "1h", "operation": "SELECT items"},
                bounds,
                end,
            ),
        ),
        (
            "latency heatmap (servers, 1 min)",
            lambda: _latency(cur, {**hour, "step": "60s", "kind": "server"}, bounds, end),
        ),
        (
            "slowest 20 traces (summaries)",
            lambda: reader.summaries(
                cur,
                reader.find_trace_ids(
                    cur, reader.TraceQuery(end - HOUR, end, "demo", None, 150_000_000, None, (), 20)
                ),
            ),
        ),
        ("get one trace", lambda: reader.get_traces(cur, [tid])),
        (
            "self-time per operation, 200 traces",
            lambda: _operations(cur, {**hour, "kind": "server", "limit": "200"}, bounds, end),
        ),
        ("logs for one trace", lambda: _logs(cur, {"traceId": f"{tid:032x}"}, bounds, end)),
        (
            "slow vs baseline attribute comparison",
            lambda: _compare(
                cur, {**hour, "kind": "client", "selection.durationMin": "80ms"}, bounds, end
            ),
        ),
    ]
    print(
        f"{args.spans:,} spans generated in {gen_s:.1f}s; file {size / 1e6:.0f} MB "
        f"({size / 1e6 / (args.spans / 1e6):.0f} MB per million spans); DuckDB threads {args.threads}"
    )
    print(f"  load average before the queries: {os.getloadavg()[0]:.1f}")
    for label, fn in cases:
        ms, cpu = _time(fn)
        target = 20 if label == "get one trace" else 300
        print(f"  {label:<40} {ms:8.1f} ms  cpu {cpu:7.1f} ms  (target < {target} ms)")
    conn.close()
    return 0
