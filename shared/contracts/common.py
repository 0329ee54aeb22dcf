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

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

MONEY_RE = re.compile(r"^-?\d{1,12}(\.\d{1,2})?$")
ORDER_REF_RE = r"^[A-Za-z0-9._-]{1,64}$"


def _parse_money(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value.quantize(Decimal("0.01"))
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError("money must be a decimal string such as \"12.50\", not a number")
    if not MONEY_RE.match(value):
        raise ValueError(f"money must be a decimal string with at most 2 decimals, got {value!r}")
    try:
        return Decimal(value).quantize(Decimal("0.01"))
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise ValueError(f"not a decimal: {value!r}") from exc


Money = Annotated[
    Decimal,
    BeforeValidator(_parse_money),
    PlainSerializer(lambda d: f"{d:.2f}", return_type=str, when_used="always"),
    # What the wire carries, for the published JSON Schemas: a string (a number is refused).
    WithJsonSchema({"type": "string", "pattern": MONEY_RE.pattern, "examples": ["12.50"]}),
]
"""A decimal amount that travels as a string with two decimals."""

OrderRef = Annotated[str, Field(pattern=ORDER_REF_RE)]
"""`store` and `external_order_id`: 1-64 chars of [A-Za-z0-9._-]."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def order_key(store: str, external_order_id: str) -> str:
    """The partition key of every order event: `{store}:{external_order_id}`."""
    return f"{store}:{external_order_id}"


class WireModel(BaseModel):
    """Base of every event: frozen, unknown fields ignored (forward compatibility)."""

    # Serialized events carry every field, defaults included: say so in the JSON Schemas.
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True,
                              json_schema_serialization_defaults_required=True)


class Event(WireModel):
    """Every event carries `event_id` and `occurred_at`; a re-send keeps its `event_id`."""

    event_id: uuid.UUID = Field(default_factory=new_id)
    occurred_at: datetime = Field(default_factory=utcnow)
