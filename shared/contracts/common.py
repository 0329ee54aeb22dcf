"""Wire types shared by every event: money, ids, timestamps, the base models.

docs/contract.md fixes these: money is a decimal string with at most two decimals, never a float;
timestamps are RFC 3339 UTC; unknown fields are ignored for forward compatibility.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

MONEY_RE = re.compile(r"^-?\d{1,12}(\.\d{1,3})?$")
ORDER_REF_RE = r"^[A-Za-z0-9._-]{1,64}$"
_CENT = Decimal("0.01")
_MIL = Decimal("0.001")


def _parse_money(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return _exact(value)
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError("money must be a decimal string such as \"12.50\", not a number")
    if not MONEY_RE.match(value):
        raise ValueError(f"money must be a decimal string with at most 3 decimals, got {value!r}")
    try:
        return _exact(Decimal(value))
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise ValueError(f"not a decimal: {value!r}") from exc


def _exact(value: Decimal) -> Decimal:
    """Two decimals, or three when the third is not zero (KWD, BHD: docs/contract.md)."""
    cents = value.quantize(_CENT)
    return cents if cents == value else value.quantize(_MIL)


def money_text(value: Decimal) -> str:
    """A money amount as the wire writes it: "12.50", "12.345"."""
    cents = value.quantize(_CENT)
    return f"{cents:.2f}" if cents == value else f"{value:.3f}"


Money = Annotated[
    Decimal,
    BeforeValidator(_parse_money),
    PlainSerializer(money_text, return_type=str, when_used="always"),
    # What the wire carries, for the published JSON Schemas: a string (a number is refused).
    WithJsonSchema({"type": "string", "pattern": MONEY_RE.pattern, "examples": ["12.50"]}),
]
"""A decimal amount that travels as a string: two decimals ("12.50", "5000.00" for JPY), three
for three-decimal currencies ("12.345" KWD). Which amounts a currency admits is checked where
the currency is known (`shared.money.fits`)."""

OrderRef = Annotated[str, Field(pattern=ORDER_REF_RE)]
"""`store` and `external_order_id`: 1-64 chars of [A-Za-z0-9._-]."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


# Ids derived from what caused them, so that handling the same input twice (a redelivery, a
# replay, consumer groups rewound after a restore from backup) yields the same ids and every
# inbox downstream recognises the repeat. The namespace is fixed forever: changing it would make
# every id new.
ID_NAMESPACE = uuid.UUID("6f0f5a52-53a4-5c8e-9d1b-3c1f2a9e7b10")


def derived_id(*parts: object) -> uuid.UUID:
    """A UUID (version 5) that is a function of `parts` alone."""
    return uuid.uuid5(ID_NAMESPACE, "/".join(str(p) for p in parts))


def order_id_for(store: str, external_order_id: str) -> uuid.UUID:
    """Shopkeeper's id of the order `{store}:{external_order_id}`: one order per key, ever."""
    return derived_id("order", store, external_order_id)


def order_key(store: str, external_order_id: str) -> str:
    """The partition key of every order event: `{store}:{external_order_id}`."""
    return f"{store}:{external_order_id}"


class WireModel(BaseModel):
    """Base of every event: frozen, unknown fields ignored (forward compatibility)."""

    # Serialized events carry every field, defaults included: say so in the JSON Schemas.
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True,
                              json_schema_serialization_defaults_required=True)


def _as_utc(value: datetime) -> datetime:
    """RFC 3339 requires an offset; a timestamp sent without one is taken as UTC (comparing it
    with aware times would otherwise fail in every handler that orders events by time)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# Every timestamp of every event is time-zone aware once parsed; none is ever naive inside
# Shopkeeper. Two kinds (docs/contract.md "Wire conventions"):
# - `UtcDatetime`: an `occurred_at`, and the timestamps of Shopkeeper's own internal events. An
#   offset is expected; one sent without is read as UTC (v1.1, for the producers and the events
#   in flight or stored before it was enforced). The JSON Schema says `format: date-time`.
# - `AwareDatetime` (pydantic's): a timestamp an outside system states about the business, where
#   a guessed zone would move the seller's day (`placed_at` of `orders.placed`): one without an
#   offset is refused, and the order is rejected as `malformed`.
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class Event(WireModel):
    """Every event carries `event_id` and `occurred_at`; a re-send keeps its `event_id`."""

    event_id: uuid.UUID = Field(default_factory=new_id)
    occurred_at: UtcDatetime = Field(default_factory=utcnow)
