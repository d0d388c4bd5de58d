"""The item catalogue in SQLite (the demo issue turns this into N shards behind ShardStore)."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Item", "ItemStore"]


@dataclass(frozen=True)
class Item:
    id: int
    name: str
    price: float
    stock: int


class ItemStore:
    """One SQLite file; a connection per thread (sqlite3 objects are not shareable)."""

    def __init__(self, path: Path, seed_items: int) -> None:
        self._path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS items "
                "(id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL,"
                " stock INTEGER NOT NULL)"
            )
            (count,) = conn.execute("SELECT count(*) FROM items").fetchone()
            if count == 0:
                conn.executemany(
                    "INSERT INTO items VALUES (?, ?, ?, ?)",
                    (
                        (i, f"item {i}", round(1 + (i * 7919 % 10_000) / 100, 2), 100)
                        for i in range(1, seed_items + 1)
                    ),
                )

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, check_same_thread=True)
            self._local.conn = conn
        return conn

    def get(self, item_id: int) -> Item | None:
        # cursor().execute() so the sqlite3 instrumentation sees the query.
        cur = self._conn().cursor()
        cur.execute("SELECT id, name, price, stock FROM items WHERE id = ?", (item_id,))
        row = cur.fetchone()
        return Item(*row) if row else None
