"""Span attributes → the promoted columns and the generic list column, vectorized.

The hot loop in flatten/spans.py sees each attribute as the raw bytes of its ``KeyValue``;
those repeat across spans (``http.request.method=GET``), so ``KvCache`` decodes each
distinct one once and hands back a small integer. Turning a request's integers into Arrow
columns is then numpy work over arrays plus Python work per *distinct* attribute only —
not per attribute occurrence, which is what made this step half of the flatten time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from collector.flatten.common import PROMOTED
from collector.flatten.values import ATTR_TYPE, any_to_text

__all__ = ["KvCache"]

_PROMOTED_COLS = [col for col, _, _ in PROMOTED.values()]
_PROMOTED_TYPES = [typ for _, _, typ in PROMOTED.values()]
_PROMOTED_INDEX = {key: (i, which) for i, (key, (_, which, _)) in enumerate(PROMOTED.items())}


class KvCache:
    """Raw ``KeyValue`` bytes → entry id (≥ 1); bounded, because values can be unique.

    Ids are stable within one request: the cache is only ever cleared by ``start``.
    """

    LIMIT = 100_000

    def __init__(self) -> None:
        self.ids: dict[bytes, int] = {}
        self._reset()

    def _reset(self) -> None:
        self.ids.clear()
        # Entry 0 is a placeholder, so that an id is never falsy (``get(raw) or miss(raw)``).
        self.keys: list[str] = [""]
        self.types: list[int] = [0]
        self.texts: list[str] = [""]
        self.pcol: list[int] = [-1]
        self.pval: list[Any] = [None]

    def start(self) -> None:
        """Called before each request: clear the cache once it holds too many entries."""
        if len(self.keys) > self.LIMIT:
            self._reset()

    def miss(self, raw: bytes) -> int:
        kv = KeyValue.FromString(raw)
        t, text = any_to_text(kv.value)
        col, pval = -1, None
        hit = _PROMOTED_INDEX.get(kv.key)
        if hit is not None and kv.value.WhichOneof("value") == hit[1]:
            col, pval = hit[0], getattr(kv.value, hit[1])
        entry = len(self.keys)
        self.keys.append(kv.key)
        self.types.append(t)
        self.texts.append(text)
        self.pcol.append(col)
        self.pval.append(pval)
        self.ids[raw] = entry
        return entry

    def columns(self, entries: list[int], counts: list[int], n: int) -> dict[str, pa.Array]:
        """Columns for ``n`` rows whose attributes are ``entries``, ``counts[i]`` per row."""
        ids = np.array(entries, dtype=np.int64)
        row_of = np.repeat(np.arange(n, dtype=np.int64), np.array(counts, dtype=np.int64))
        uniq, inv = np.unique(ids, return_inverse=True)
        distinct = uniq.tolist()
        u_pcol = np.array([self.pcol[i] for i in distinct], dtype=np.int16)
        pcol = u_pcol[inv] if len(ids) else np.zeros(0, dtype=np.int16)
        out: dict[str, pa.Array] = {}
        for j, (name, typ) in enumerate(zip(_PROMOTED_COLS, _PROMOTED_TYPES, strict=True)):
            in_col = np.flatnonzero(u_pcol == j)
            if in_col.size == 0:
                out[name] = pa.nulls(n, typ)
                continue
            values = pa.array([self.pval[distinct[i]] for i in in_col.tolist()], typ)
            at = np.flatnonzero(pcol == j)
            take = np.full(n, -1, dtype=np.int32)
            # A key repeated within one span: the last value wins, as a dict would.
            take[row_of[at]] = np.searchsorted(in_col, inv[at])
            out[name] = values.take(pa.array(take, mask=take < 0))
        generic = np.flatnonzero(pcol < 0)
        per_row = np.bincount(row_of[generic], minlength=n) if n else np.zeros(0, np.int64)
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(per_row, out=offsets[1:])
        pick = pa.array(inv[generic])
        struct = pa.StructArray.from_arrays(
            [
                pa.array([self.keys[i] for i in distinct], pa.string()).take(pick),
                pa.array([self.types[i] for i in distinct], pa.uint8()).take(pick),
                pa.array([self.texts[i] for i in distinct], pa.string()).take(pick),
            ],
            fields=list(ATTR_TYPE.value_type),
        )
        out["attributes"] = pa.ListArray.from_arrays(pa.array(offsets), struct)
        return out
