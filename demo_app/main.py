"""``create_app``: the demo service's FastAPI application."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, HTTPException, Path
from starlette.concurrency import run_in_threadpool

from demo_app.settings import DemoSettings
from demo_app.store import Item, ItemStore
from instrumentation import instrument

__all__ = ["create_app"]

MAX_ITEM_ID = 2**31 - 1


def create_app(settings: DemoSettings | None = None) -> FastAPI:
    settings = settings or DemoSettings()
    store = ItemStore(settings.data_dir / "demo" / "items.sqlite", settings.seed_items)
    app = FastAPI(title="Narrows demo")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/items/{item_id}")
    async def get_item(item_id: Annotated[int, Path(ge=1, le=MAX_ITEM_ID)]) -> Item:
        item = await run_in_threadpool(store.get, item_id)
        if item is None:
            raise HTTPException(status_code=404, detail=f"item {item_id} not found")
        return item

    instrument(app, service_name=settings.service_name)
    return app
