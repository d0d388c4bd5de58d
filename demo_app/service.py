"""``DemoService``: builds the shards, the cache and the catalogue from the settings.

One object per app, kept on ``app.state.demo``; ``open()``/``close()`` run in the lifespan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from demo_app.cache import Cache, make_cache
from demo_app.catalog import Catalog
from demo_app.faults import FAULTS, Faults, FaultSpec, log_change, parse_fault_arg
from demo_app.settings import DemoSettings
from demo_app.shards import Shards

__all__ = ["DemoService"]


@dataclass
class DemoService:
    settings: DemoSettings
    faults: Faults
    shards: Shards
    cache: Cache | None
    catalog: Catalog

    @classmethod
    def build(
        cls,
        settings: DemoSettings,
        routes: Sequence[str],
        *,
        specs: Mapping[str, FaultSpec] = FAULTS,
        replicas: int = 1,
        instance: int = 0,
    ) -> DemoService:
        """Everything but I/O (connections open lazily; tables are made in ``open``).

        ``specs``/``replicas``/``instance``: the micro topology's catalog replicas also take
        its faults, and know which replica they are.
        """
        faults = Faults(
            shards=settings.shards,
            routes=routes,
            seed=settings.fault_seed,
            item_count=settings.seed_items,
            specs=specs,
            replicas=replicas,
            instance=instance,
        )
        for text in settings.faults:  # --fault at start: validated before anything runs
            name, raw = parse_fault_arg(text)
            log_change(name, faults.params(name), faults.set(name, raw))
        shards = Shards.from_settings(settings, faults, seed_items=settings.seed_items)
        cache = make_cache(settings.cache, faults, max_items=settings.cache_max_items)
        catalog = Catalog(shards, cache, faults, ttl_s=settings.cache_ttl_s)
        return cls(settings, faults, shards, cache, catalog)

    async def open(self) -> None:
        await self.shards.open()

    async def close(self) -> None:
        if self.cache is not None:
            await self.cache.close()
        await self.shards.close()
