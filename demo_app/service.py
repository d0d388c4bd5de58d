"""``DemoService``: builds the shards, the cache and the catalogue from the settings.

One object per app, kept on ``app.state.demo``; ``open()``/``close()`` run in the lifespan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from demo_app.backends import Backend, PostgresBackend, SqliteBackend
from demo_app.cache import Cache, make_cache
from demo_app.catalog import Catalog
from demo_app.faults import Faults, log_change, parse_fault_arg
from demo_app.settings import DemoSettings
from demo_app.shards import Shards, ShardStore

__all__ = ["DemoService"]


def _backends(settings: DemoSettings) -> list[Backend]:
    if not settings.shard_dsns:
        folder = settings.data_dir / "demo" / f"{settings.shards}-shards"
        return [SqliteBackend(folder / f"shard_{i}.sqlite") for i in range(settings.shards)]
    return [PostgresBackend(dsn) for dsn in settings.expanded_dsns()]


@dataclass
class DemoService:
    settings: DemoSettings
    faults: Faults
    shards: Shards
    cache: Cache | None
    catalog: Catalog

    @classmethod
    def build(cls, settings: DemoSettings, routes: Sequence[str]) -> DemoService:
        """Everything but I/O (connections open lazily; tables are made in ``open``)."""
        faults = Faults(
            shards=settings.shards,
            routes=routes,
            seed=settings.fault_seed,
            item_count=settings.seed_items,
        )
        for text in settings.faults:  # --fault at start: validated before anything runs
            name, raw = parse_fault_arg(text)
            log_change(name, faults.params(name), faults.set(name, raw))
        stores = [
            ShardStore(
                i,
                settings.shards,
                backend,
                faults,
                pool_size=settings.pool_size,
                pool_timeout_s=settings.pool_timeout_s,
                seed_items=settings.seed_items,
            )
            for i, backend in enumerate(_backends(settings))
        ]
        shards = Shards(stores)
        cache = make_cache(settings.cache, faults, max_items=settings.cache_max_items)
        catalog = Catalog(shards, cache, faults, ttl_s=settings.cache_ttl_s)
        return cls(settings, faults, shards, cache, catalog)

    async def open(self) -> None:
        await self.shards.open()

    async def close(self) -> None:
        if self.cache is not None:
            await self.cache.close()
        await self.shards.close()
