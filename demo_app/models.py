"""The demo's data and request shapes (pydantic: validation gives clear 422 reasons)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "MAX_ITEM_ID",
    "MAX_ORDER_LINES",
    "Item",
    "ItemIn",
    "Order",
    "OrderIn",
    "OrderLine",
    "StockIn",
]

MAX_ITEM_ID = 2**31 - 1
MAX_ORDER_LINES = 20

ItemId = Annotated[int, Field(ge=1, le=MAX_ITEM_ID, strict=True)]


class Item(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    price: float
    stock: int
    text: str


class ItemIn(BaseModel):
    """PUT /items/{id}: the whole item (PUT replaces or creates)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    price: Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False)]
    stock: Annotated[int, Field(ge=0, le=1_000_000_000, strict=True)]
    text: Annotated[str, Field(max_length=2_000)] = ""


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: ItemId
    quantity: Annotated[int, Field(ge=1, le=1_000, strict=True)] = 1


def _distinct(lines: list[OrderLine]) -> list[OrderLine]:
    ids = [line.id for line in lines]
    if len(set(ids)) != len(ids):
        raise ValueError("each item may appear once; add up the quantities instead")
    return lines


class OrderIn(BaseModel):
    """POST /orders: one line per distinct item."""

    model_config = ConfigDict(extra="forbid")

    items: Annotated[list[OrderLine], Field(min_length=1, max_length=MAX_ORDER_LINES)]
    customer: Annotated[str, Field(max_length=100)] = ""

    @field_validator("items")
    @classmethod
    def _distinct(cls, lines: list[OrderLine]) -> list[OrderLine]:
        return _distinct(lines)


class StockIn(BaseModel):
    """The micro topology's catalog: POST /stock/reserve and /stock/release."""

    model_config = ConfigDict(extra="forbid")

    items: Annotated[list[OrderLine], Field(min_length=1, max_length=MAX_ORDER_LINES)]

    @field_validator("items")
    @classmethod
    def _distinct(cls, lines: list[OrderLine]) -> list[OrderLine]:
        return _distinct(lines)


class Order(BaseModel):
    id: int
    customer: str
    total: float
    lines: list[OrderLine]
    created_at: float
