"""A small FastAPI app for the instrumentation integration tests.

``NARROWS_TEST_INSTRUMENT=1`` makes it call ``instrument(app)`` itself; without it the
app has no telemetry code at all, which is what the zero-code test runs under
``opentelemetry-instrument``.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request

app = FastAPI()
_db: dict[str, sqlite3.Connection] = {}


def _conn() -> sqlite3.Connection:
    # Opened on first use, after instrument()/zero-code set up the sqlite3 instrumentation.
    if "c" not in _db:
        path = Path(tempfile.mkdtemp(prefix="shop-")) / "items.sqlite"
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item-{i}") for i in range(50)])
        conn.commit()
        _db["c"] = conn
    return _db["c"]


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, Any]:
    cur = _conn().cursor()
    cur.execute("SELECT id, name FROM items WHERE id = ?", (item_id,))
    row = cur.fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail="no such item")
    return {"id": row[0], "name": row[1]}


@app.get("/checkout/{order_id}")
async def checkout(order_id: int) -> dict[str, Any]:
    import logging

    import structlog

    structlog.get_logger("shop.checkout").info(
        "order paid", order_id=order_id, card_token="tok_4242", note="Bearer abcdef123456"
    )
    logging.getLogger("shop.legacy").warning("stock low for order %d", order_id)
    return {"order": order_id, "paid": True}


@app.get("/careless")
async def careless(request: Request) -> dict[str, Any]:
    """An app that logs everything it was sent, then fails quoting a credential."""
    import structlog

    structlog.get_logger("shop.careless").info(
        "incoming", url=str(request.url), headers=dict(request.headers)
    )
    raise RuntimeError(f"upstream refused password={request.query_params.get('password')}")


@app.get("/proxy")
async def proxy(request: Request) -> dict[str, Any]:
    """An outgoing call (traced by the httpx instrumentation) carrying credentials."""
    import httpx

    target = str(request.base_url).replace("://", "://shop:hunter2-url@", 1)
    async with httpx.AsyncClient() as client:
        resp = await client.get(
            f"{target}healthz",
            params={"api_key": "SECRET-OUT-KEY", "token": "SECRET-OUT-TOKEN", "page": "2"},
        )
    return {"status": resp.status_code}


@app.get("/boom")
async def boom() -> dict[str, Any]:
    raise RuntimeError("kaput")


if os.environ.get("NARROWS_TEST_INSTRUMENT") == "1":
    from instrumentation import instrument

    telemetry = instrument(app)
    startup_file = os.environ.get("NARROWS_TEST_STARTUP_SPAN")
    if startup_file:  # a span queued at import: in the gunicorn master under --preload
        with telemetry.tracer().start_as_current_span("startup") as span:
            Path(startup_file).write_text(format(span.get_span_context().trace_id, "032x"))
