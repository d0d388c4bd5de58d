"""OTLP ``AnyValue`` ⇄ the stored ``(key, type, text)`` triple.

Attributes are stored as ``STRUCT(k, t, v)[]`` with the value as text, so that a search for
``{"sameplacetag2": "123"}`` is one string comparison whatever the value's type (Jaeger
compares attribute values as strings too), while the type code keeps the OTLP/JSON we
answer with faithful: ``intValue`` comes back as an int, ``boolValue`` as a bool.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pyarrow as pa
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = [
    "ATTR_TYPE",
    "T_ARRAY",
    "T_BOOL",
    "T_BYTES",
    "T_DOUBLE",
    "T_EMPTY",
    "T_INT",
    "T_KVLIST",
    "T_STRING",
    "AttrColumns",
    "any_to_json",
    "any_to_text",
    "double_text",
    "stored_to_json",
]

T_EMPTY, T_STRING, T_BOOL, T_INT, T_DOUBLE, T_BYTES, T_ARRAY, T_KVLIST = range(8)

ATTR_STRUCT = pa.struct([("k", pa.string()), ("t", pa.uint8()), ("v", pa.string())])
ATTR_TYPE = pa.list_(ATTR_STRUCT)

_WHICH_CODE = {
    "string_value": T_STRING,
    "bool_value": T_BOOL,
    "int_value": T_INT,
    "double_value": T_DOUBLE,
    "bytes_value": T_BYTES,
    "array_value": T_ARRAY,
    "kvlist_value": T_KVLIST,
}


def double_text(x: float) -> str:
    """A double as Go's ``strconv.FormatFloat(x, 'g', -1)`` would mostly print it (72.5 → 72.5)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))
    return repr(x)


def any_to_json(v: AnyValue) -> dict[str, Any]:
    """OTLP/JSON form of an AnyValue (hex-free: AnyValue carries no ids)."""
    which = v.WhichOneof("value")
    if which is None:
        return {}
    if which == "string_value":
        return {"stringValue": v.string_value}
    if which == "bool_value":
        return {"boolValue": v.bool_value}
    if which == "int_value":
        return {"intValue": str(v.int_value)}
    if which == "double_value":
        d = v.double_value
        return {"doubleValue": d if math.isfinite(d) else double_text(d)}
    if which == "bytes_value":
        return {"bytesValue": base64.b64encode(v.bytes_value).decode()}
    if which == "array_value":
        return {"arrayValue": {"values": [any_to_json(x) for x in v.array_value.values]}}
    return {
        "kvlistValue": {
            "values": [
                {"key": kv.key, "value": any_to_json(kv.value)} for kv in v.kvlist_value.values
            ]
        }
    }


def any_to_text(v: AnyValue) -> tuple[int, str]:
    """``(type code, text)`` for one value; arrays and maps are kept as their OTLP/JSON."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return T_STRING, v.string_value
    if which == "int_value":
        return T_INT, str(v.int_value)
    if which == "bool_value":
        return T_BOOL, "true" if v.bool_value else "false"
    if which == "double_value":
        return T_DOUBLE, double_text(v.double_value)
    if which is None:
        return T_EMPTY, ""
    code = _WHICH_CODE[which]
    if code == T_BYTES:
        return T_BYTES, base64.b64encode(v.bytes_value).decode()
    inner = any_to_json(v)
    return code, json.dumps(next(iter(inner.values())), separators=(",", ":"))


def stored_to_json(t: int, text: str) -> dict[str, Any]:
    """The OTLP/JSON ``AnyValue`` for a stored ``(type, text)`` pair."""
    if t == T_STRING:
        return {"stringValue": text}
    if t == T_INT:
        return {"intValue": text}
    if t == T_BOOL:
        return {"boolValue": text == "true"}
    if t == T_DOUBLE:
        try:
            d = float(text)
        except ValueError:
            return {"doubleValue": text}
        return {"doubleValue": d if math.isfinite(d) else text}
    if t == T_BYTES:
        return {"bytesValue": text}
    if t == T_ARRAY:
        return {"arrayValue": json.loads(text)}
    if t == T_KVLIST:
        return {"kvlistValue": json.loads(text)}
    return {}


class AttrColumns:
    """Accumulates attribute lists for many rows as flat Arrow-ready columns plus offsets."""

    __slots__ = ("keys", "offsets", "texts", "types")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.types: list[int] = []
        self.texts: list[str] = []
        self.offsets: list[int] = [0]

    def add_all(self, attributes: Any) -> None:
        """Append one row holding every KeyValue of ``attributes``."""
        keys, types, texts = self.keys, self.types, self.texts
        for kv in attributes:
            t, s = any_to_text(kv.value)
            keys.append(kv.key)
            types.append(t)
            texts.append(s)
        self.offsets.append(len(keys))

    def close_row(self) -> None:
        self.offsets.append(len(self.keys))

    def to_arrow(self) -> pa.ListArray:
        values = pa.StructArray.from_arrays(
            [
                pa.array(self.keys, pa.string()),
                pa.array(self.types, pa.uint8()),
                pa.array(self.texts, pa.string()),
            ],
            fields=list(ATTR_STRUCT),
        )
        return pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), values)
