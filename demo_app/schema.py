"""Tables every shard holds, and the deterministic catalogue the demo seeds them with.

One DDL for both backends (SQLite accepts PostgreSQL's type names). Each shard records the
layout it was built for in ``narrows_meta``, so a data dir or database made for another
shard count is refused instead of silently answering "not found" for moved keys.
"""

from __future__ import annotations

import random

from demo_app.models import Item

__all__ = ["DDL", "WORDS", "make_item"]

DDL = (
    "CREATE TABLE IF NOT EXISTS narrows_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS items ("
    " id BIGINT PRIMARY KEY, name TEXT NOT NULL, price DOUBLE PRECISION NOT NULL,"
    " stock BIGINT NOT NULL, text TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS orders ("
    " id BIGINT PRIMARY KEY, customer TEXT NOT NULL, total DOUBLE PRECISION NOT NULL,"
    " lines TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)",
)

ADJECTIVES = (
    "amber", "brisk", "copper", "dusty", "early", "fallow", "gentle", "hollow", "iron",
    "jolly", "keen", "lunar", "mellow", "narrow", "olive", "plain", "quiet", "rustic",
    "silver", "tidal", "umber", "velvet", "woven", "young",
)  # fmt: skip
NOUNS = (
    "anchor", "basket", "candle", "drum", "easel", "flask", "globe", "hammer", "inkwell",
    "jar", "kettle", "lantern", "mirror", "needle", "oar", "pitcher", "quill", "rope",
    "saddle", "teapot", "umbrella", "vase", "whistle", "yoke",
)  # fmt: skip
#: The words item texts are made of; `narrows load` searches for them.
WORDS = (
    "harbour", "river", "canal", "lock", "bridge", "ferry", "tide", "current", "delta",
    "estuary", "meadow", "orchard", "granite", "cedar", "linen", "wool", "clay", "brass",
    "enamel", "glass", "sturdy", "handmade", "vintage", "compact", "portable", "seasoned",
    "polished", "weathered", "nautical", "rural",
)  # fmt: skip


def make_item(item_id: int) -> Item:
    """The seeded item with this id: the same on every machine and every run."""
    rng = random.Random(item_id)
    name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
    text = " ".join(rng.choice(WORDS) for _ in range(8))
    price = round(1 + rng.random() * 99, 2)
    return Item(id=item_id, name=name, price=price, stock=100, text=text)
