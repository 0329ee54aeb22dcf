"""What intake's operators' HTTP answers (api.py), for OpenAPI and as a filter of each answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.responses import Json, Money, Timestamp


class CatalogProduct(BaseModel):
    sku: str = Field(examples=["TSHIRT-RED-M"])
    active: bool
    category: str | None = None
    price: Money
    attributes: list[str] = Field(examples=[["battery"]])


class Coverage(BaseModel):
    countries: list[str] | None = Field(
        description="ISO codes logistics serves; null until logistics has said",
        examples=[["DE", "FR", "US"]])
    refused_attributes: dict[str, list[str]] = Field(
        description="per country, goods no service takes there", examples=[{"AU": ["battery"]}])


class Reason(BaseModel):
    code: str = Field(examples=["high_value"])
    message: str = Field(examples=["order total 1200.00 is over the store's review threshold"])


class Hold(BaseModel):
    order_id: str
    store: str = Field(examples=["acme-eu"])
    external_order_id: str = Field(examples=["100234"])
    customer_id: str | None = None
    reasons: list[Reason]
    codes: list[str] = Field(examples=[["high_value"]])
    owner: str | None = Field(default=None, description="who claimed it")
    created_at: Timestamp
    received_at: Timestamp
    age_seconds: float
    sla_seconds: int | None = None
    sla_breached: bool
    grand_total: Money | None = None
    currency: str | None = Field(default=None, examples=["EUR"])


class StatusChanged(BaseModel):
    order_id: str
    status: Literal["accepted", "rejected", "on_hold"]


class Claimed(BaseModel):
    order_id: str
    owner: str = Field(examples=["alice"])


class Reviewed(BaseModel):
    order_id: str
    status: str = Field(examples=["accepted", "on_hold"])
    reasons: list[Reason]


class DecisionRecord(BaseModel):
    decided_at: Timestamp
    trigger: str = Field(examples=["order_placed", "operator_approved"])
    status: str
    reasons: list[Reason]
    rules: list[dict[str, Json]] = Field(
        description="the rules that fired: rule, code, effect, message, inputs")
    policy: dict[str, Json] = Field(description="the store policy the decision used")


class AuditEntry(BaseModel):
    at: Timestamp
    actor: str
    action: str = Field(examples=["approved", "claim", "correct_address"])
    note: str | None = None
    details: dict[str, Json]


class OrderDecision(BaseModel):
    order_id: str
    store: str
    external_order_id: str
    status: str
    decision: DecisionRecord | None = Field(description="the latest decision")
    history: list[DecisionRecord]
    audit: list[AuditEntry]
    customer_words: CustomerWords | None = Field(default=None, description=(
        "the order's note, gift message and gift wrap, for the people who pack it"))


class CustomerWords(BaseModel):
    note: str | None = None
    gift_message: str | None = None
    gift_wrap: bool = False


class StorePolicy(BaseModel):
    """A store's review settings (domain.Policy); `*` is the default of stores without one."""

    high_value_threshold: Money = Field(examples=["2000.00"])
    high_value_currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["USD"], description=(
        "the threshold's currency; orders in other currencies are converted (fx.rates)"))
    high_value_action: Literal["hold", "reject"]
    duplicate_window_minutes: int = Field(description="0 turns the duplicate check off")
    merge_window_minutes: int
    hold_pending_payment: bool
    invalid_promo_action: Literal["hold", "reject"]
    restricted_goods_action: Literal["hold", "reject"]
    hold_sla_minutes: int
    price_tolerance_percent: str = Field(examples=["2.00"], description=(
        "a line priced off the store's price list by more than this is held (price_mismatch)"))


class StoreSeller(BaseModel):
    """The seller a store belongs to (setup section `sellers`)."""

    seller: str = Field(examples=["acme-us"])
    name: str = Field(examples=["Acme US"])
    base_currency: str = Field(examples=["USD"])
    stores: list[str] = Field(examples=[["acme-shop", "acme-outlet"]])


class ListPrice(BaseModel):
    store: str
    currency: str
    sku: str
    price: Money
    valid_from: Timestamp | None = Field(description="null: valid since always")
    valid_to: Timestamp | None = Field(description="null: until replaced")
    updated_by: str | None = None
    updated_at: Timestamp


class FxPublished(BaseModel):
    event_id: str
    base: str
    pairs: int


class DryRunResult(BaseModel):
    evaluated: int = Field(description="recent orders evaluated again with the candidate rules")
    changed: int
    transitions: dict[str, int] = Field(examples=[{"accepted -> on_hold": 3}])
    candidate: dict[str, StorePolicy]
    orders: list[dict[str, Json]] = Field(
        description="per changed order: its current and candidate status and reasons, and the"
        " rules that fire only with one of them")


class Promotion(BaseModel):
    code: str = Field(examples=["SPRING10"])
    kind: Literal["percent", "fixed"]
    value: Money
    min_spend: Money
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    active: bool
    scope_skus: list[str]
    scope_categories: list[str]
    stackable: bool
    per_customer_limit: int | None = None
    currency: str = Field(default="USD", examples=["USD"],
                          description="the currency of min_spend and of a fixed value")


class BlockedEntry(BaseModel):
    kind: Literal["customer_id", "email", "phone", "address"]
    value: str
    action: Literal["hold", "reject"]
    note: str | None = None
    created_by: str
    created_at: Timestamp


class Blocked(BaseModel):
    kind: Literal["customer_id", "email", "phone", "address"]
    action: Literal["hold", "reject"]


class Unblocked(BaseModel):
    removed: bool = Field(description="whether an entry was removed")


class CustomerOrder(BaseModel):
    """An order found by its customer's e-mail, phone or name (intake's view of it)."""

    order_id: str
    store: str = Field(examples=["acme-eu"])
    external_order_id: str = Field(examples=["100234"])
    customer_id: str | None = None
    status: str = Field(examples=["accepted", "on_hold", "rejected"],
                        description="intake's decision; analytics has the order's later states")
    received_at: Timestamp
    grand_total: Money | None = None
    currency: str | None = None


class Identities(BaseModel):
    customer_id: str | None = None
    email: str | None = Field(default=None, examples=["ana@example.com"])
    phone: str | None = None
    address: str | None = Field(default=None, description="the address key (domain.address_key)")
