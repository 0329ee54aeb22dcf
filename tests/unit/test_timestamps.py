"""Every timestamp of every event is time-zone aware once parsed (docs/contract.md "Wire
conventions"): `placed_at` of `orders.placed` must carry an offset (refused without: the order is
rejected as malformed); an `occurred_at`, and the timestamps of Shopkeeper's own internal events,
without one are read as UTC (v1.1, kept for producers and events stored before)."""

from __future__ import annotations

import json
import types
import typing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import (
    AwareDatetime,
    BaseModel,
    FutureDatetime,
    NaiveDatetime,
    PastDatetime,
    TypeAdapter,
    ValidationError,
)

from services.intake.store import stored_order
from shared import topics
from shared.contracts import OrderPlaced, OrderSnapshot
from tools import storefront as sf

SHENZHEN = timezone(timedelta(hours=8))


def timestamp_fields(model: type[BaseModel], seen: set[type[BaseModel]] | None = None
                     ) -> list[tuple[type[BaseModel], str]]:
    """(model, field) of every datetime field reachable from `model` (nested models and lists)."""
    seen = seen if seen is not None else set()
    if model in seen:
        return []
    seen.add(model)
    found = []
    for name, field in model.model_fields.items():
        for t in _leaves(field.annotation):
            if t in (datetime, AwareDatetime, NaiveDatetime, PastDatetime, FutureDatetime):
                found.append((model, name))
            elif isinstance(t, type) and issubclass(t, BaseModel):
                found += timestamp_fields(t, seen)
    return found


def _leaves(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, tuple, dict) and args:
        return [leaf for a in args for leaf in _leaves(a)]
    return [annotation]


ALL_TIMESTAMPS = sorted({(m, f) for t in topics.ALL for m, f in timestamp_fields(t.model)},
                        key=lambda mf: (mf[0].__name__, mf[1]))


def test_the_registry_has_the_timestamps_this_test_knows_of() -> None:
    names = {(m.__name__, f) for m, f in ALL_TIMESTAMPS}
    assert ("OrderPlaced", "placed_at") in names and ("OrderSnapshot", "accepted_at") in names
    assert ("OrderDelivered", "delivered_at") in names and ("TrackingUpdated", "occurred_at") in names


@pytest.mark.parametrize(("model", "field"), ALL_TIMESTAMPS,
                         ids=[f"{m.__name__}.{f}" for m, f in ALL_TIMESTAMPS])
def test_every_event_timestamp_is_aware_or_refused_never_naive(model: type[BaseModel],
                                                               field: str) -> None:
    info = model.model_fields[field]
    schema = model.model_json_schema()["properties"][field]
    assert schema.get("format") == "date-time", f"{model.__name__}.{field} is not date-time"
    # A naive value: the field's validation either refuses it or makes it aware (UTC).
    annotation = (typing.Annotated[info.annotation, *info.metadata] if info.metadata
                  else info.annotation)
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    try:
        value = adapter.validate_python("2026-12-06T10:00:00")
    except ValidationError as exc:
        assert "timezone" in str(exc).lower()
        return
    assert value == datetime(2026, 12, 6, 10, tzinfo=UTC)
    assert adapter.validate_python("2026-12-06T10:00:00+08:00").utcoffset() == timedelta(hours=8)


def _order(placed_at: str) -> dict[str, Any]:
    payload = sf.order("shop-cn-1", "A-1", [("TEA", 1, "12.00")])
    payload["placed_at"] = placed_at
    return payload


def test_an_order_placed_without_an_offset_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as refused:
        OrderPlaced.model_validate_json(json.dumps(_order("2026-12-06T10:00:00")))
    (error,) = refused.value.errors()
    assert error["loc"] == ("placed_at",) and error["type"] == "timezone_aware"


def test_an_order_placed_in_shenzhen_keeps_its_offset() -> None:
    order = OrderPlaced.model_validate_json(json.dumps(_order("2026-12-06T08:30:00+08:00")))
    assert order.placed_at == datetime(2026, 12, 6, 8, 30, tzinfo=SHENZHEN)
    assert order.placed_at == datetime(2026, 12, 6, 0, 30, tzinfo=UTC)


def test_an_occurred_at_without_an_offset_is_still_read_as_utc() -> None:
    order = OrderPlaced.model_validate_json(json.dumps(
        {**_order("2026-12-06T10:00:00Z"), "occurred_at": "2026-12-06T10:00:05"}))
    assert order.occurred_at == datetime(2026, 12, 6, 10, 0, 5, tzinfo=UTC)


def test_an_order_intake_stored_before_offsets_were_required_is_still_read() -> None:
    # Given an order stored as intake dumped it when a naive placed_at was accepted
    old = json.dumps(_order("2026-12-06T10:00:00"))
    # When intake reads it back (a hold approved, a re-review, a dry run)
    order = stored_order(old)
    # Then it is the same order, its placed_at read as UTC as it was then
    assert order.placed_at == datetime(2026, 12, 6, 10, tzinfo=UTC)
    assert stored_order(json.dumps(_order("2026-12-06T10:00:00+08:00"))).placed_at.utcoffset() \
        == timedelta(hours=8)


def test_an_internal_snapshot_in_flight_without_an_offset_is_read_as_utc() -> None:
    order = OrderPlaced.model_validate_json(json.dumps(_order("2026-12-06T10:00:00Z")))
    snapshot = {"order_id": "o", "store": order.store, "external_order_id": order.external_order_id,
                "customer_id": order.customer.id, "placed_at": "2026-12-06T10:00:00",
                "accepted_at": "2026-12-06T10:00:01",
                "shipping_address": order.shipping_address.model_dump(mode="json"),
                "lines": [ln.model_dump(mode="json") for ln in order.lines],
                "currency": order.currency, "shipping_option": order.shipping_option,
                "totals": order.totals.model_dump(mode="json"),
                "payment_method": order.payment.method, "payment_status": order.payment.status}
    snap = OrderSnapshot.model_validate(snapshot)
    assert snap.placed_at.tzinfo is not None and snap.accepted_at.tzinfo is not None
