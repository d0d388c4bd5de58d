"""Span attributes → the promoted columns and the generic list column, vectorized.

The hot loop in flatten/spans.py sees each attribute as the raw bytes of its ``KeyValue``;
those repeat across spans (``http.request.method=GET``), so ``KvCache`` decodes each
distinct one once and hands back a small integer. Turning a request's integers into Arrow
columns is then numpy work over arrays, plus one list lookup per attribute occurrence —
instead of building a Python list of every row for every promoted column, which is what
made this step half of the flatten time.
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
        self.pval: list[Any] = [None]
        # The promoted column of each entry (-1: generic), as numpy for vectorized lookups.
        self._pcol = np.full(1024, -1, dtype=np.int16)

    def start(self) -> None:
        """Called before each request: clear the cache once it holds too many entries."""
        if len(self.keys) > self.LIMIT:
            self._reset()

    def miss(self, raw: bytes) -> int:
        kv = KeyValue.FromString(raw)
        col, pval = -1, None
        hit = _PROMOTED_INDEX.get(kv.key)
        if hit is not None and kv.value.WhichOneof("value") == hit[1]:
            # A promoted value needs no text (only generic attributes are stored as text);
            # values like a pool wait in ms are unique per span, so this path is hot.
            col, pval = hit[0], getattr(kv.value, hit[1])
            t, text = 0, ""
        else:
            t, text = any_to_text(kv.value)
        entry = len(self.keys)
        self.keys.append(kv.key)
        self.types.append(t)
        self.texts.append(text)
        self.pval.append(pval)
        if entry >= len(self._pcol):
            grown = np.full(2 * len(self._pcol), -1, dtype=np.int16)
            grown[: len(self._pcol)] = self._pcol
            self._pcol = grown
        self._pcol[entry] = col
        self.ids[raw] = entry
        return entry

    def columns(self, entries: list[int], counts: list[int], n: int) -> dict[str, pa.Array]:
        """Columns for ``n`` rows whose attributes are ``entries``, ``counts[i]`` per row."""
        ids = np.array(entries, dtype=np.int64)
        row_of = np.repeat(np.arange(n, dtype=np.int64), np.array(counts, dtype=np.int64))
        pcol = self._pcol[ids]
        present = np.bincount(pcol + 1, minlength=len(_PROMOTED_COLS) + 1)
        out: dict[str, pa.Array] = {}
        for j, (name, typ) in enumerate(zip(_PROMOTED_COLS, _PROMOTED_TYPES, strict=True)):
            if not present[j + 1]:
                out[name] = pa.nulls(n, typ)
                continue
            at = np.flatnonzero(pcol == j)
            pval = self.pval
            values = pa.array([pval[k] for k in ids[at].tolist()], typ)
            take = np.full(n, -1, dtype=np.int32)
            # A key repeated within one span: the last value wins, as a dict would.
            take[row_of[at]] = np.arange(len(at), dtype=np.int32)
            out[name] = values.take(pa.array(take, mask=take < 0))
        generic = np.flatnonzero(pcol < 0)
        per_row = np.bincount(row_of[generic], minlength=n) if n else np.zeros(0, np.int64)
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(per_row, out=offsets[1:])
        gids = ids[generic].tolist()
        keys, types, texts = self.keys, self.types, self.texts
        struct = pa.StructArray.from_arrays(
            [
                pa.array([keys[k] for k in gids], pa.string()),
                pa.array([types[k] for k in gids], pa.uint8()),
                pa.array([texts[k] for k in gids], pa.string()),
            ],
            fields=list(ATTR_TYPE.value_type),
        )
        out["attributes"] = pa.ListArray.from_arrays(pa.array(offsets), struct)
        return out
