"""OTLP ``ExportTraceServiceRequest`` → Arrow columns of the ``spans`` table, validated.

This loop is the collector's hot path (every span of every request passes through it), so
it reads each protobuf field once, appends to plain lists and builds the Arrow arrays in
one call per column; no per-span dicts, no ``MessageToDict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.flatten.attrcache import KvCache
from collector.flatten.common import (
    MAX_NS,
    PROMOTED,
    Rejections,
    ResourceScopeRows,
    service_of,
)
from collector.flatten.values import ATTR_TYPE, AttrColumns
from collector.flatten.wire import LazyTraceRequest

__all__ = ["EVENT_TYPE", "LINK_TYPE", "SPAN_SCHEMA", "SpanColumns", "flatten_traces"]

EVENT_TYPE = pa.list_(
    pa.struct(
        [
            ("time_ns", pa.int64()),
            ("name", pa.string()),
            ("attributes", ATTR_TYPE),
            ("dropped_attributes", pa.uint32()),
        ]
    )
)
LINK_TYPE = pa.list_(
    pa.struct(
        [
            ("trace_id", pa.string()),
            ("span_id", pa.string()),
            ("trace_state", pa.string()),
            ("attributes", ATTR_TYPE),
            ("dropped_attributes", pa.uint32()),
            ("flags", pa.uint32()),
        ]
    )
)
_ZERO16 = bytes(16)
_ZERO8 = bytes(8)


@dataclass
class SpanColumns:
    """The result of flattening one request: Arrow tables plus what was refused."""

    spans: pa.Table
    resources: pa.Table
    scopes: pa.Table
    rejected: Rejections = field(default_factory=Rejections)

    @property
    def count(self) -> int:
        return int(self.spans.num_rows)


SPAN_SCHEMA = pa.schema(
    [
        ("trace_hi", pa.uint64()),
        ("trace_lo", pa.uint64()),
        ("span_id", pa.uint64()),
        ("parent_span_id", pa.uint64()),
        ("trace_state", pa.string()),
        ("flags", pa.uint32()),
        ("service_name", pa.string()),
        ("name", pa.string()),
        ("kind", pa.uint8()),
        ("start_ns", pa.int64()),
        ("end_ns", pa.int64()),
        ("status_code", pa.uint8()),
        ("status_message", pa.string()),
        *[(col, typ) for col, _, typ in PROMOTED.values()],
        ("attributes", ATTR_TYPE),
        ("events", EVENT_TYPE),
        ("links", LINK_TYPE),
        ("dropped_attributes", pa.uint32()),
        ("dropped_events", pa.uint32()),
        ("dropped_links", pa.uint32()),
        ("resource_id", pa.uint64()),
        ("scope_id", pa.uint64()),
        ("received_ns", pa.int64()),
    ]
)


class _Events:
    def __init__(self) -> None:
        self.time: list[int] = []
        self.name: list[str] = []
        self.dropped: list[int] = []
        self.attrs = AttrColumns()
        self.offsets: list[int] = [0]

    def add(self, events: Any) -> None:
        for ev in events:
            self.time.append(ev.time_unix_nano)
            self.name.append(ev.name)
            self.dropped.append(ev.dropped_attributes_count)
            self.attrs.add_all(ev.attributes)
        self.offsets.append(len(self.time))

    def to_arrow(self) -> pa.Array:
        values = pa.StructArray.from_arrays(
            [
                pa.array(self.time, pa.int64()),
                pa.array(self.name, pa.string()),
                self.attrs.to_arrow(),
                pa.array(self.dropped, pa.uint32()),
            ],
            fields=list(EVENT_TYPE.value_type),
        )
        return pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), values)


class _Links:
    def __init__(self) -> None:
        self.trace_id: list[str] = []
        self.span_id: list[str] = []
        self.state: list[str] = []
        self.dropped: list[int] = []
        self.flags: list[int] = []
        self.attrs = AttrColumns()
        self.offsets: list[int] = [0]

    def add(self, links: Any) -> None:
        for lk in links:
            self.trace_id.append(lk.trace_id.hex())
            self.span_id.append(lk.span_id.hex())
            self.state.append(lk.trace_state)
            self.dropped.append(lk.dropped_attributes_count)
            self.flags.append(lk.flags)
            self.attrs.add_all(lk.attributes)
        self.offsets.append(len(self.trace_id))

    def to_arrow(self) -> pa.Array:
        values = pa.StructArray.from_arrays(
            [
                pa.array(self.trace_id, pa.string()),
                pa.array(self.span_id, pa.string()),
                pa.array(self.state, pa.string()),
                self.attrs.to_arrow(),
                pa.array(self.dropped, pa.uint32()),
                pa.array(self.flags, pa.uint32()),
            ],
            fields=list(LINK_TYPE.value_type),
        )
        return pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), values)


_CACHE = KvCache()
_STATUS_CACHE: dict[bytes, tuple[int, str]] = {b"": (0, "")}


def _status(raw: bytes) -> tuple[int, str]:
    got = _STATUS_CACHE.get(raw)
    if got is None:
        st = Status.FromString(raw)
        got = (int(st.code), st.message)
        if len(_STATUS_CACHE) < 10_000:
            _STATUS_CACHE[raw] = got
    return got


def _ids(raw: list[bytes], width: int) -> np.ndarray[Any, np.dtype[np.uint64]]:
    return np.frombuffer(b"".join(raw), dtype=">u8").reshape(-1, width // 8).astype(np.uint64)


_OUT_OF_RANGE = "spans with a time past 2^63 ns (stored as signed 64-bit)"


def _reject_reason(tid: bytes, sid: bytes, pid: bytes, t0: int, t1: int) -> str | None:
    if len(tid) != 16 or tid == _ZERO16:
        return "spans with an invalid trace id (not 16 non-zero bytes)"
    if len(sid) != 8 or sid == _ZERO8:
        return "spans with an invalid span id (not 8 non-zero bytes)"
    if pid and len(pid) != 8:
        return "spans with an invalid parent span id (not 8 bytes)"
    if t1 < t0:
        return "spans ending before they start"
    if t1 > MAX_NS:
        return _OUT_OF_RANGE
    return None


def flatten_traces(body: bytes, received_ns: int) -> SpanColumns:
    """Decode a protobuf ``ExportTraceServiceRequest`` and flatten every valid span.

    Raises ``google.protobuf.message.DecodeError`` for a malformed body.
    """
    req = LazyTraceRequest()
    req.ParseFromString(body)
    rejected = Rejections()
    rs_rows = ResourceScopeRows()
    rows: list[tuple[Any, ...]] = []
    rows_append = rows.append
    _CACHE.start()
    ents: list[int] = []
    ents_append = ents.append
    attr_counts: list[int] = []
    counts_append = attr_counts.append
    cache_get = _CACHE.ids.get
    miss = _CACHE.miss
    events = _Events()
    links = _Links()
    event_rows: list[int] = []
    for rs in req.resource_spans:
        resource = Resource.FromString(rs.resource)
        svc = service_of(resource)
        rid = rs_rows.resource(resource, svc)
        for ss in rs.scope_spans:
            sid = rs_rows.scope(InstrumentationScope.FromString(ss.scope))
            for sp in ss.spans:
                tid = sp.trace_id
                spid = sp.span_id
                pid = sp.parent_span_id
                t0 = sp.start_time_unix_nano
                t1 = sp.end_time_unix_nano
                if (
                    len(tid) != 16
                    or len(spid) != 8
                    or t1 < t0
                    or t1 > MAX_NS
                    or (pid and len(pid) != 8)
                ):
                    rejected.add(_reject_reason(tid, spid, pid, t0, t1) or "invalid spans")
                    continue
                if tid == _ZERO16 or spid == _ZERO8:
                    rejected.add(_reject_reason(tid, spid, pid, t0, t1) or "invalid spans")
                    continue
                evs = [Span.Event.FromString(e) for e in sp.events] if sp.events else []
                if any(ev.time_unix_nano > MAX_NS for ev in evs):
                    rejected.add(_OUT_OF_RANGE)
                    continue
                attrs = sp.attributes
                for kv in attrs:
                    ents_append(cache_get(kv) or miss(kv))
                counts_append(len(attrs))
                rows_append(
                    (
                        tid,
                        spid,
                        pid or _ZERO8,
                        sp.trace_state,
                        sp.flags,
                        svc,
                        sp.name,
                        sp.kind,
                        t0,
                        t1,
                        sp.status,
                        sp.dropped_attributes_count,
                        sp.dropped_events_count,
                        sp.dropped_links_count,
                        rid,
                        sid,
                    )
                )
                if sp.events or sp.links:
                    event_rows.append(len(rows) - 1)
                    events.add(evs)
                    links.add([Span.Link.FromString(lk) for lk in sp.links])
    n = len(rows)
    if not n:
        return SpanColumns(
            _empty_spans(), rs_rows.resources_table(), rs_rows.scopes_table(), rejected
        )
    (
        tids,
        sids,
        pids,
        states,
        flags,
        svcs,
        names,
        kinds,
        t0s,
        t1s,
        statuses,
        da,
        de,
        dl,
        rids,
        scids,
    ) = zip(*rows, strict=True)
    trace = _ids(list(tids), 16)
    status = [_status(s) for s in statuses]
    cols: dict[str, pa.Array] = {
        "trace_hi": pa.array(trace[:, 0]),
        "trace_lo": pa.array(trace[:, 1]),
        "span_id": pa.array(_ids(list(sids), 8)[:, 0]),
        "parent_span_id": pa.array(_ids(list(pids), 8)[:, 0]),
        "trace_state": pa.array(states, pa.string()),
        "flags": pa.array(flags, pa.uint32()),
        "service_name": pa.array(svcs, pa.string()),
        "name": pa.array(names, pa.string()),
        "kind": pa.array(kinds, pa.uint8()),
        "start_ns": pa.array(t0s, pa.int64()),
        "end_ns": pa.array(t1s, pa.int64()),
        "status_code": pa.array([s[0] for s in status], pa.uint8()),
        "status_message": pa.array([s[1] for s in status], pa.string()),
    }
    cols.update(_CACHE.columns(ents, attr_counts, n))
    ev_arr, lk_arr = _nested(events, links, event_rows, n)
    cols.update(
        {
            "events": ev_arr,
            "links": lk_arr,
            "dropped_attributes": pa.array(da, pa.uint32()),
            "dropped_events": pa.array(de, pa.uint32()),
            "dropped_links": pa.array(dl, pa.uint32()),
            "resource_id": pa.array(rids, pa.uint64()),
            "scope_id": pa.array(scids, pa.uint64()),
            "received_ns": pa.array(np.full(n, received_ns, dtype=np.int64)),
        }
    )
    return SpanColumns(pa.table(cols), rs_rows.resources_table(), rs_rows.scopes_table(), rejected)


def _nested(events: _Events, links: _Links, rows: list[int], n: int) -> tuple[pa.Array, pa.Array]:
    """Events and links of the few spans that have them, as list columns over all rows."""
    if not rows:
        return pa.array([[]] * n, EVENT_TYPE), pa.array([[]] * n, LINK_TYPE)
    ev_counts = np.zeros(n, dtype=np.int32)
    lk_counts = np.zeros(n, dtype=np.int32)
    ev_counts[rows] = np.diff(np.array(events.offsets, dtype=np.int32))
    lk_counts[rows] = np.diff(np.array(links.offsets, dtype=np.int32))
    ev_off = np.concatenate([[0], np.cumsum(ev_counts)]).astype(np.int32)
    lk_off = np.concatenate([[0], np.cumsum(lk_counts)]).astype(np.int32)
    ev = events.to_arrow().values
    lk = links.to_arrow().values
    return pa.ListArray.from_arrays(pa.array(ev_off), ev), pa.ListArray.from_arrays(
        pa.array(lk_off), lk
    )


def _empty_spans() -> pa.Table:
    return SPAN_SCHEMA.empty_table()
