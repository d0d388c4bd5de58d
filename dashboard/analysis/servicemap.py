"""The service map: who calls whom (service, replica, shard, cache), how often, how often it
fails, how slow it is and how much of it is network, from client/server span pairs in a
sample of traces; and which edges stand out from their peers.

A *call* is a CLIENT span and, when the callee is traced, its SERVER child in another
process: the callee and its replica come from that server span's resource (``service.name``,
``service.instance.id``). A call nobody answered (connection refused, timeout) has no server
child, so the callee comes from the client span's own attributes (``app.upstream.service`` /
``app.upstream.instance``, else ``peer.service`` or ``server.address``). Client duration −
server duration is the *network time* (wire, connection set-up, and queueing before the
server's first instrumented line); both are measured on one clock each, so clock skew
between hosts cancels out. Shard queries (``app.shard.id``) and cache lookups
(``app.cache.name``) are calls to shard and cache nodes owned by the calling service
(replicas share their shards). A SERVER span without a client parent is a call from
``(external)``. Each retry attempt (``http.request.resend_count``) is its own call.

A call without its server span was still *answered* when the client span carries the
answer's ``http.response.status_code``: the server span may not have arrived yet (the end
of a window that reaches "now"), may have been dropped, or the callee is not traced. Only
a call with neither — refused, reset, timed out — is unanswered. An attempt the caller
abandoned (``error.type=CancelledError`` without ERROR status: a sibling call failed, or
its own client went away) is *cancelled*: neither a failure nor a refusal, and its
duration says nothing about the callee.

An edge *stands out* against its peers — the edges from the same caller to the other
replicas of one service, or to the other shards of one database: slower (each call's
duration relative to the median of the same operation over the peers, Mann-Whitney of the
edge against the rest, Holm over the peers; on average ≥ 1.5× and ≥ 1 ms) or failing
(binomial test of its errors against the peers' rate; ≥ 1 % and ≥ 3×). An edge without
peers fails when ≥ 5 % of its calls fail, significantly above 1 %.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from dashboard.analysis.inputs import CLIENT, SERVER, entry_span, is_error, route_of
from dashboard.analysis.stats import (
    ALPHA,
    MIN_SAMPLES,
    binom_greater,
    holm,
    mann_whitney_greater,
    typical_mean,
)
from dashboard.sources.model import Span, Trace

__all__ = [
    "CALL_COLUMNS",
    "EDGE_COLUMNS",
    "EXTERNAL",
    "Edge",
    "Hop",
    "Node",
    "ServiceMap",
    "calls_frame",
    "hops",
    "node_id",
    "service_map",
]

EXTERNAL = "(external)"
SLOW_RATIO = 1.5
SLOW_MIN_MS = 1.0
FAIL_MIN_RATE = 0.01
FAIL_RATIO = 3.0
#: Without peers to compare with, an edge fails at this error rate (tested against 1 %).
ALONE_FAIL_RATE = 0.05
ALONE_BASE_RATE = 0.01
EXAMPLES = 20

#: One row per call in the sampled traces (``calls_frame``).
CALL_COLUMNS: Mapping[str, str] = {
    "trace_id": "str",
    "span_id": "str, the client span (the server span for a call from outside)",
    "start_ns": "int, unix ns",
    "caller": "str, service.name of the client ('(external)' for an untraced caller)",
    "caller_instance": "str, its service.instance.id ('' if none)",
    "callee": "str, service.name of the server; for shards and caches the owning service",
    "callee_instance": "str, the server's service.instance.id ('' if none)",
    "target_kind": "'service' | 'shard' | 'cache'",
    "target": "str, the shard id or cache name ('' for a service)",
    "operation": "str, the server span's name (else the client span's)",
    "duration_ms": "float, as the caller saw it",
    "server_ms": "float | NaN, the server span's duration",
    "network_ms": "float | NaN, duration_ms − server_ms (≥ 0)",
    "error": "bool, the call failed (client or server span ERROR / 5xx / error.type)",
    "answered": "bool, a server span exists or the client saw a status code (always True "
    "for shard and cache calls)",
    "cancelled": "bool, the caller abandoned the attempt (not a failure, not a refusal)",
    "error_type": "str | None, error.type of the client span",
    "resend": "int, http.request.resend_count (0 for a first attempt)",
    "route": "str, the trace's entry route",
    "trace_error": "bool, the trace's entry span failed",
}

#: Columns of ``ServiceMap.frame`` (one row per edge).
EDGE_COLUMNS = (
    "from", "to", "kind", "rate_rps", "error_pct", "p50_ms", "p95_ms", "network_ms", "calls",
    "retries", "status", "why",
)  # fmt: skip

EdgeKind = Literal["http", "db", "cache"]
Status = Literal["ok", "slow", "failing"]


@dataclass(frozen=True)
class Node:
    id: str
    kind: Literal["service", "instance", "shard", "cache", "external"]
    #: The service this node belongs to (a replica's service; a shard's owner).
    service: str
    instance: str = ""
    label: str = ""


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: EdgeKind
    #: Calls in the sample (every attempt), of which resends, failed, never answered.
    calls: int
    retries: int
    errors: int
    unanswered: int
    #: Calls per second over the window (sample counts × ``ServiceMap.scale``).
    rate_rps: float
    error_rate: float
    p50_ms: float
    p95_ms: float
    #: Median client − server time of the answered calls (NaN for shard/cache calls).
    network_ms: float
    status: Status = "ok"
    #: How many times slower (median, relative) or more failing than its peers; 1 if alone.
    ratio: float = 1.0
    #: Holm-adjusted p-value of the test that flagged (or cleared) it.
    p_value: float = 1.0
    why: str = ""
    #: Example traces: failed calls first, then the slowest.
    trace_ids: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.source} → {self.target}"

    @property
    def label(self) -> str:
        """The short text drawn on the edge: rate, error rate, p95."""
        return f"{self.rate_rps:.3g}/s · {self.error_rate:.1%} err · p95 {self.p95_ms:.3g} ms"


@dataclass(frozen=True)
class ServiceMap:
    nodes: list[Node]
    edges: list[Edge]
    #: The calls behind the edges (CALL_COLUMNS plus ``source`` and ``dest`` node ids).
    calls: pd.DataFrame = field(repr=False)
    window_s: float = 0.0
    traces: int = 0
    #: Real calls one sampled call stands for (total requests / sampled requests).
    scale: float = 1.0

    def edge(self, source: str, target: str) -> Edge | None:
        return next((e for e in self.edges if e.source == source and e.target == target), None)

    def standing_out(self) -> list[Edge]:
        """Slow or failing edges, the worst first."""
        flagged = [e for e in self.edges if e.status != "ok"]
        return sorted(flagged, key=lambda e: (e.status != "failing", -e.ratio, e.key))

    def edge_calls(self, edge: Edge) -> pd.DataFrame:
        c = self.calls
        return c[(c["source"] == edge.source) & (c["dest"] == edge.target)]

    def frame(self) -> pd.DataFrame:
        """One row per edge, for a table."""
        return pd.DataFrame(
            [
                {
                    "from": e.source,
                    "to": e.target,
                    "kind": e.kind,
                    "rate_rps": round(e.rate_rps, 3),
                    "error_pct": round(100 * e.error_rate, 2),
                    "p50_ms": round(e.p50_ms, 2),
                    "p95_ms": round(e.p95_ms, 2),
                    "network_ms": round(e.network_ms, 3),
                    "calls": e.calls,
                    "retries": e.retries,
                    "status": e.status,
                    "why": e.why,
                }
                for e in self.edges
            ],
            columns=list(EDGE_COLUMNS),
        )


@dataclass(frozen=True)
class Hop:
    """A CLIENT span and its SERVER child: one request crossing into another process."""

    client: Span
    server: Span

    @property
    def network_ms(self) -> float:
        """Client duration − server duration: wire, connection set-up, queueing before the
        server's first instrumented line (≥ 0; both measured on their own clock)."""
        return max(0.0, self.client.duration_ms - self.server.duration_ms)


def hops(trace: Trace) -> list[Hop]:
    """Every client span of ``trace`` with a server child, with that child."""
    by_id = {s.span_id: s for s in trace.spans}
    out = []
    for s in trace.spans:
        parent = by_id.get(s.parent_span_id)
        if s.kind == SERVER and parent is not None and parent.kind == CLIENT and parent is not s:
            out.append(Hop(parent, s))
    return out


def node_id(service: str, instance: str = "", *, by_instance: bool = True) -> str:
    """``narrows-catalog[catalog-2]`` for a replica, ``narrows-catalog`` for a service."""
    return f"{service}[{instance}]" if by_instance and instance else service


def _shard_node(owner: str, shard: str) -> str:
    return f"{owner}: shard {shard}"


def _cache_node(owner: str, name: str) -> str:
    return f"{owner}: cache {name}"


#: ``error.type`` values of an attempt the caller itself abandoned.
CANCELLED_TYPES = frozenset({"CancelledError", "asyncio.CancelledError", "cancelled"})


def _cancelled(span: Span) -> bool:
    """Abandoned by its own caller: a cancellation ``error.type`` without ERROR status."""
    return str(span.attributes.get("error.type", "")) in CANCELLED_TYPES and not is_error(span)


def _failed(span: Span) -> bool:
    return is_error(span) or (
        span.attributes.get("error.type") is not None and not _cancelled(span)
    )


def _resend(span: Span) -> int:
    value = span.attributes.get("http.request.resend_count")
    try:
        return max(0, int(value)) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def _callee_of(client: Span) -> tuple[str, str]:
    """Who an unanswered client span meant to call, from its own attributes."""
    a = client.attributes
    service = a.get("app.upstream.service") or a.get("peer.service")
    if not service:
        host, port = a.get("server.address"), a.get("server.port")
        service = f"{host}:{port}" if host and port else (host or "")
    instance = a.get("app.upstream.instance")
    return str(service or ""), "" if instance is None else str(instance)


def calls_frame(traces: Sequence[Trace]) -> pd.DataFrame:
    """One row per call (CALL_COLUMNS) in ``traces``."""
    rows: list[dict[str, Any]] = []
    for t in traces:
        by_id = {s.span_id: s for s in t.spans}
        children: dict[str, list[Span]] = {}
        for s in t.spans:
            if s.parent_span_id and s.parent_span_id != s.span_id:
                children.setdefault(s.parent_span_id, []).append(s)
        entry = entry_span(t)
        base = {
            "trace_id": t.trace_id,
            "route": route_of(entry),
            "trace_error": is_error(entry) if entry is not None else False,
        }
        for s in t.spans:
            row = _call(s, by_id, children)
            if row is not None:
                rows.append({**base, **row})
    frame = pd.DataFrame(rows, columns=list(CALL_COLUMNS))
    return frame.astype(
        {
            "start_ns": "int64",
            "duration_ms": "float64",
            "server_ms": "float64",
            "network_ms": "float64",
            "error": "bool",
            "answered": "bool",
            "cancelled": "bool",
            "resend": "int64",
            "trace_error": "bool",
        }
    )


def _call(
    s: Span, by_id: dict[str, Span], children: dict[str, list[Span]]
) -> dict[str, Any] | None:
    a = s.attributes
    row: dict[str, Any] = {
        "span_id": s.span_id,
        "start_ns": s.start_ns,
        "caller": s.service,
        "caller_instance": s.instance,
        "duration_ms": s.duration_ms,
        "server_ms": np.nan,
        "network_ms": np.nan,
        "error": _failed(s),
        "answered": True,
        "cancelled": False,
        "error_type": a.get("error.type"),
        "resend": _resend(s),
        "operation": s.name,
        "callee": s.service,
        "callee_instance": "",
    }
    if a.get("app.cache.name") is not None:
        return {**row, "target_kind": "cache", "target": str(a["app.cache.name"])}
    if a.get("app.shard.id") is not None:
        return {**row, "target_kind": "shard", "target": str(a["app.shard.id"])}
    if s.kind == SERVER:
        parent = by_id.get(s.parent_span_id)
        if parent is not None and parent.kind == CLIENT:
            return None  # counted with its client span
        return {
            **row,
            "caller": EXTERNAL,
            "caller_instance": "",
            "callee_instance": s.instance,
            "server_ms": s.duration_ms,
            "resend": 0,
            "target_kind": "service",
            "target": "",
        }
    if s.kind != CLIENT:
        return None
    servers = [c for c in children.get(s.span_id, []) if c.kind == SERVER]
    if servers:
        server = max(servers, key=lambda c: c.duration_ms)
        return {
            **row,
            "callee": server.service,
            "callee_instance": server.instance,
            "operation": server.name,
            "server_ms": server.duration_ms,
            "network_ms": max(0.0, s.duration_ms - server.duration_ms),
            "error": row["error"] or _failed(server),
            "target_kind": "service",
            "target": "",
        }
    callee, instance = _callee_of(s)
    if not callee:
        return None  # a client span to nobody we can name (not an inter-service call)
    return {
        **row,
        "callee": callee,
        "callee_instance": instance,
        # An answer came if the client saw its status (the server span is elsewhere).
        "answered": a.get("http.response.status_code") is not None,
        "cancelled": _cancelled(s),
        "target_kind": "service",
        "target": "",
    }


def _node_columns(calls: pd.DataFrame, by_instance: bool) -> pd.DataFrame:
    c = calls.copy()
    if c.empty:
        c["source"], c["dest"], c["edge_kind"] = [], [], []
        return c
    c["source"] = [
        node_id(s, i, by_instance=by_instance)
        for s, i in zip(c["caller"], c["caller_instance"], strict=True)
    ]
    dest, kind = [], []
    for callee, inst, tk, target in zip(
        c["callee"], c["callee_instance"], c["target_kind"], c["target"], strict=True
    ):
        if tk == "shard":
            dest.append(_shard_node(callee, target))
            kind.append("db")
        elif tk == "cache":
            dest.append(_cache_node(callee, target))
            kind.append("cache")
        else:
            dest.append(node_id(callee, inst, by_instance=by_instance))
            kind.append("http")
    c["dest"], c["edge_kind"] = dest, kind
    return c


def _nodes(calls: pd.DataFrame, by_instance: bool) -> list[Node]:
    out: dict[str, Node] = {}
    for _, r in calls.drop_duplicates(["source", "dest"]).iterrows():
        for nid, service, inst in (
            (r["source"], r["caller"], r["caller_instance"]),
            (r["dest"], r["callee"], r["callee_instance"]),
        ):
            if nid in out:
                continue
            if nid == r["dest"] and r["target_kind"] == "shard":
                out[nid] = Node(nid, "shard", service, label=f"shard {r['target']}")
            elif nid == r["dest"] and r["target_kind"] == "cache":
                out[nid] = Node(nid, "cache", service, label=f"cache {r['target']}")
            elif service == EXTERNAL:
                out[nid] = Node(nid, "external", service, label=EXTERNAL)
            elif by_instance and inst:
                out[nid] = Node(nid, "instance", service, inst, label=_short(str(inst)))
            else:
                out[nid] = Node(nid, "service", service, label=service)
    return sorted(out.values(), key=lambda n: (n.service, n.kind, n.id))


def _short(instance: str) -> str:
    """A label for an instance id: the SDK's default is a 36-character UUID."""
    return instance if len(instance) <= 16 else instance[:8] + "…"


def _examples(rows: pd.DataFrame) -> tuple[str, ...]:
    ordered = rows.sort_values(["error", "duration_ms"], ascending=[False, False])
    return tuple(dict.fromkeys(ordered["trace_id"]))[:EXAMPLES]


def _edge(rows: pd.DataFrame, window_s: float, scale: float) -> Edge:
    first = rows.iloc[0]
    d = rows["duration_ms"]
    answered = rows[rows["answered"] & rows["network_ms"].notna()]
    n = len(rows)
    return Edge(
        source=str(first["source"]),
        target=str(first["dest"]),
        kind=first["edge_kind"],
        calls=n,
        retries=int((rows["resend"] > 0).sum()),
        errors=int(rows["error"].sum()),
        unanswered=int((~rows["answered"] & ~rows["cancelled"]).sum()),
        rate_rps=n * scale / window_s if window_s > 0 else float("nan"),
        error_rate=float(rows["error"].mean()),
        p50_ms=float(d.quantile(0.5)),
        p95_ms=float(d.quantile(0.95)),
        network_ms=float(answered["network_ms"].median()) if len(answered) else float("nan"),
        trace_ids=_examples(rows),
    )


def _peer_group(edge: Edge, nodes: dict[str, Node]) -> tuple[str, str, str]:
    """Edges from one caller to the replicas of one service, or to the shards of one owner."""
    target = nodes[edge.target]
    return (edge.source, edge.kind, target.service)


def _judge(group: list[Edge], calls: pd.DataFrame) -> list[Edge]:
    """Flag the edges of one peer group that are slower or failing than the rest."""
    if len(group) < 2:
        return [_judge_alone(e) for e in group]
    keys = {(e.source, e.target) for e in group}
    rows = calls[[(s, d) in keys for s, d in zip(calls["source"], calls["dest"], strict=True)]]
    ok = rows[~rows["error"] & ~rows["cancelled"]].copy()
    median = ok.groupby("operation")["duration_ms"].transform("median")
    ok["relative"] = ok["duration_ms"] / median.where(median > 0, np.nan)
    slow_tests, fail_tests = [], []
    for e in group:
        mine = (ok["source"] == e.source) & (ok["dest"] == e.target)
        rel_m, rel_r = ok.loc[mine, "relative"], ok.loc[~mine, "relative"]
        p = mann_whitney_greater(rel_m, rel_r)
        ratio = typical_mean(rel_m) / typical_mean(rel_r) if len(rel_m) and len(rel_r) else 1.0
        excess = (
            typical_mean(ok.loc[mine, "duration_ms"]) - typical_mean(ok.loc[~mine, "duration_ms"])
            if len(rel_m) and len(rel_r)
            else 0.0
        )
        slow_tests.append((p, ratio if np.isfinite(ratio) else 1.0, excess))
        others = [o for o in group if o is not e]
        errs, n = sum(o.errors for o in others), sum(o.calls for o in others)
        base = (errs + 0.5) / (n + 1.0)
        fail_tests.append((binom_greater(e.errors, e.calls, base), base))
    slow_p = holm([t[0] for t in slow_tests])
    fail_p = holm([t[0] for t in fail_tests])
    out = []
    for e, (_, ratio, excess), ps, (_, base), pf in zip(
        group, slow_tests, slow_p, fail_tests, fail_p, strict=True
    ):
        if (
            pf < ALPHA
            and e.error_rate >= FAIL_MIN_RATE
            and e.error_rate >= FAIL_RATIO * base
            and e.errors >= 2
        ):
            out.append(
                _with(
                    e,
                    "failing",
                    e.error_rate / base,
                    pf,
                    f"{e.error_rate:.1%} of calls fail vs {base:.2%} to its peers",
                )
            )
        elif ps < ALPHA and ratio >= SLOW_RATIO and excess >= SLOW_MIN_MS:
            out.append(
                _with(
                    e,
                    "slow",
                    ratio,
                    ps,
                    f"{ratio:.1f}× as slow as the same calls to its peers "
                    f"(+{excess:.1f} ms on average)",
                )
            )
        else:
            out.append(_with(e, "ok", max(ratio, 1.0), min(ps, pf), ""))
    return out


def _judge_alone(e: Edge) -> Edge:
    p = binom_greater(e.errors, e.calls, ALONE_BASE_RATE)
    if e.calls >= MIN_SAMPLES and e.error_rate >= ALONE_FAIL_RATE and p < ALPHA:
        return _with(e, "failing", e.error_rate / ALONE_BASE_RATE, p, f"{e.error_rate:.1%} fail")
    return _with(e, "ok", 1.0, p, "")


def _with(e: Edge, status: Status, ratio: float, p: float, why: str) -> Edge:
    return replace(e, status=status, ratio=float(ratio), p_value=float(p), why=why)


def service_map(
    traces: Sequence[Trace] | None = None,
    *,
    calls: pd.DataFrame | None = None,
    window_s: float,
    scale: float = 1.0,
    by_instance: bool = True,
) -> ServiceMap:
    """The map of the calls in ``traces`` (or an already built ``calls`` frame) over a
    window of ``window_s`` seconds; ``by_instance=False`` merges replicas into services."""
    if window_s <= 0:
        raise ValueError("window_s must be positive")
    if scale <= 0:
        raise ValueError("scale must be positive")
    if calls is None:
        calls = calls_frame(traces or [])
    c = _node_columns(calls, by_instance)
    if c.empty:
        return ServiceMap([], [], c, window_s, len(traces or []), scale)
    nodes = _nodes(c, by_instance)
    by_id = {n.id: n for n in nodes}
    edges = [_edge(rows, window_s, scale) for _, rows in c.groupby(["source", "dest"], sort=True)]
    groups: dict[tuple[str, str, str], list[Edge]] = {}
    for e in edges:
        groups.setdefault(_peer_group(e, by_id), []).append(e)
    judged = [j for g in groups.values() for j in _judge(g, c)]
    judged.sort(key=lambda e: (e.source, e.target))
    n_traces = len(traces) if traces is not None else int(c["trace_id"].nunique())
    return ServiceMap(nodes, judged, c, window_s, n_traces, scale)
