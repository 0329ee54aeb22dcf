"""Logistics' operators' HTTP: shipments of an order with the carrier choice's trace, and rate
shopping for a hypothetical parcel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from shared.contracts.public import ShippingOption

from . import domain, store

router = APIRouter()


class QuoteRequest(BaseModel):
    warehouse: str
    country: str = Field(pattern=r"^[A-Z]{2}$")
    weight_g: int = Field(gt=0, le=1_000_000)
    dims_mm: tuple[int, int, int]
    attributes: list[str] = []
    shipping_option: ShippingOption = "standard"


@router.post("/quotes")
async def quote(q: QuoteRequest, request: Request) -> dict[str, Any]:
    spec = domain.ParcelSpec(q.warehouse, q.country, q.weight_g, q.dims_mm, tuple(q.attributes))
    choice = domain.choose(await store.services(request.app.state.runtime.pool), spec,
                           q.shipping_option)
    return {"service": choice.service.code if choice.service else None,
            "cost": str(choice.cost) if choice.cost is not None else None,
            "chargeable_g": choice.chargeable_g, "reason": choice.reason, "trace": choice.trace}


@router.get("/shipments/{store_name}/{external_order_id}")
async def shipments(store_name: str, external_order_id: str, request: Request
                    ) -> list[dict[str, Any]]:
    return await store.shipments_of(request.app.state.runtime.pool,
                                    f"{store_name}:{external_order_id}")
