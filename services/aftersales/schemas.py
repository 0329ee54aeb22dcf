"""What after-sales' operators' HTTP answers (api.py), for OpenAPI and as a filter of each
answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.responses import Json, Money, OpenModel, Timestamp


class Request(OpenModel):
    order_key: str = Field(examples=["acme-eu:100234"])
    request_id: str = Field(examples=["RMA-1"])
    order_id: str | None = None
    kind: str = Field(examples=["return", "refund", "exchange", "reship"])
    reason: str = Field(examples=["damaged"])
    lines: list[dict[str, Json]]
    status: str = Field(examples=["review", "authorized", "inspection", "refunded"])
    decision: dict[str, Json] | None = Field(description="the policy's decision and its reason")
    exchange_for: Json | None = None
    comment: str | None = None
    source: str | None = Field(default=None, examples=["customer", "carrier"])
    grade: str | None = None
    store: str | None = None
    returned_lines: list[dict[str, Json]] | None = None
    return_label: dict[str, Json] | None = None
    created_at: Timestamp
    updated_at: Timestamp | None = None


class HistoryEntry(BaseModel):
    status: str
    note: str | None = None
    actor: str = Field(examples=["policy", "operator", "alice"])
    at: Timestamp


class RequestDetail(Request):
    history: list[HistoryEntry]
    replacement_order_key: str | None = Field(
        description="the exchange or reship order created for it")


class Decided(BaseModel):
    request_id: str
    status: str


class Graded(BaseModel):
    request_id: str
    status: str
    grade: str = Field(examples=["resellable"])


class Policy(BaseModel):
    return_window_days: str = Field(examples=["30"])
    refund_without_return_below: Money
    return_shipping_cost: Money
    replacement_without_review_below: Money
    currency: str = Field(default="USD", examples=["USD"])


class StorePolicy(Policy):
    store: str


class Refund(BaseModel):
    order_key: str
    order_id: str
    request_id: str
    kind: str | None = None
    reason: str | None = None
    amount: Money
    currency: str = Field(examples=["EUR"])
    includes_shipping: bool
    created_at: Timestamp
    requested_at: Timestamp | None = None


class FollowUp(BaseModel):
    id: int
    order_key: str
    rating: int = Field(ge=1, le=5)
    tags: list[str]
    status: Literal["open", "closed"]
    created_at: Timestamp
    comment: str | None = None
    assignee: str | None = None
    resolution: str | None = Field(default=None, examples=["refunded"])
    updated_at: Timestamp | None = None
    closed_at: Timestamp | None = None
    closed_by: str | None = None
    age_seconds: float = Field(description="Open: since it was opened; closed: how long it took")


class FollowUpNote(BaseModel):
    kind: Literal["assigned", "comment", "closed", "reopened"]
    author: str
    body: str
    at: Timestamp


class FollowUpDetail(FollowUp):
    notes: list[FollowUpNote]


class FollowUpSummary(BaseModel):
    open: int
    unassigned: int
    oldest_open_seconds: float | None
    median_open_seconds: float | None
    closed_last_7_days: int
    median_seconds_to_close_last_7_days: float | None


class TagStats(BaseModel):
    count: int
    average_rating: str = Field(examples=["3.75"])
