"""OTLP ``ExportLogsServiceRequest`` → Arrow columns of the ``logs`` table, validated."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from collector.flatten.common import MAX_NS, Rejections, ResourceScopeRows, service_of
from collector.flatten.values import ATTR_TYPE, T_STRING, AttrColumns, any_to_json, any_to_text

__all__ = ["LOG_SCHEMA", "LogColumns", "flatten_logs"]

LOG_SCHEMA = pa.schema(
    [
        ("time_ns", pa.int64()),
        ("observed_ns", pa.int64()),
        ("service_name", pa.string()),
        ("severity_number", pa.uint8()),
        ("severity_text", pa.string()),
        ("body", pa.string()),
        ("body_type", pa.uint8()),
        ("trace_hi", pa.uint64()),
        ("trace_lo", pa.uint64()),
        ("span_id", pa.uint64()),
        ("flags", pa.uint32()),
        ("event_name", pa.string()),
        ("attributes", ATTR_TYPE),
        ("dropped_attributes", pa.uint32()),
        ("resource_id", pa.uint64()),
        ("scope_id", pa.uint64()),
        ("received_ns", pa.int64()),
    ]
)


@dataclass
class LogColumns:
    logs: pa.Table
    resources: pa.Table
    scopes: pa.Table
    rejected: Rejections = field(default_factory=Rejections)

    @property
    def count(self) -> int:
        return int(self.logs.num_rows)


def flatten_logs(req: ExportLogsServiceRequest, received_ns: int) -> LogColumns:
    """Every valid log record as one row; a record with a malformed trace/span id is refused."""
    rejected = Rejections()
    rs_rows = ResourceScopeRows()
    cols: dict[str, list[object]] = {f.name: [] for f in LOG_SCHEMA if f.name != "attributes"}
    attrs = AttrColumns()
    for rl in req.resource_logs:
        svc = service_of(rl.resource)
        rid = rs_rows.resource(rl.resource, svc)
        for sl in rl.scope_logs:
            sid = rs_rows.scope(sl.scope)
            for rec in sl.log_records:
                tid, spid = rec.trace_id, rec.span_id
                if tid and len(tid) != 16:
                    rejected.add("log records with an invalid trace id (not 16 bytes)")
                    continue
                if spid and len(spid) != 8:
                    rejected.add("log records with an invalid span id (not 8 bytes)")
                    continue
                if max(rec.time_unix_nano, rec.observed_time_unix_nano) > MAX_NS:
                    # Stored as signed 64-bit nanoseconds (OTLP's are unsigned).
                    rejected.add("log records with a time out of range")
                    continue
                t, text = any_to_text(rec.body)
                if t != T_STRING and rec.body.WhichOneof("value") is not None:
                    text = json.dumps(any_to_json(rec.body), separators=(",", ":"))
                has_trace = bool(tid) and any(tid)
                cols["time_ns"].append(
                    rec.time_unix_nano or rec.observed_time_unix_nano or received_ns
                )
                cols["observed_ns"].append(rec.observed_time_unix_nano)
                cols["service_name"].append(svc)
                cols["severity_number"].append(rec.severity_number)
                cols["severity_text"].append(rec.severity_text)
                cols["body"].append(text)
                cols["body_type"].append(t)
                cols["trace_hi"].append(int.from_bytes(tid[:8], "big") if has_trace else None)
                cols["trace_lo"].append(int.from_bytes(tid[8:], "big") if has_trace else None)
                cols["span_id"].append(int.from_bytes(spid, "big") if spid and any(spid) else None)
                cols["flags"].append(rec.flags)
                cols["event_name"].append(getattr(rec, "event_name", ""))
                cols["dropped_attributes"].append(rec.dropped_attributes_count)
                cols["resource_id"].append(rid)
                cols["scope_id"].append(sid)
                attrs.add_all(rec.attributes)
    n = len(cols["time_ns"])
    arrays = []
    for f in LOG_SCHEMA:
        if f.name == "attributes":
            arrays.append(attrs.to_arrow())
        elif f.name == "received_ns":
            arrays.append(pa.array(np.full(n, received_ns, dtype=np.int64)))
        else:
            arrays.append(pa.array(cols[f.name], f.type))
    return LogColumns(
        pa.Table.from_arrays(arrays, schema=LOG_SCHEMA),
        rs_rows.resources_table(),
        rs_rows.scopes_table(),
        rejected,
    )
