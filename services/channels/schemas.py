"""What channels' HTTP answers (api.py), for OpenAPI and as a filter of each answer. Secrets
are never among the fields: a channel is listed without them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.responses import Json, OpenModel, Timestamp

Platform = Literal["shopify", "woocommerce", "amazon", "generic"]


class ChannelSaved(BaseModel):
    store: str = Field(examples=["shop-us-1"])
    platform: Platform
    created: bool = Field(description="true when the channel is new (201), false replaced (200)")


class ChannelDeleted(BaseModel):
    store: str
    deleted: bool


class Channel(OpenModel):
    """A store's channel as operators see it: no secrets, the health of its edge."""

    store: str = Field(examples=["shop-us-1"])
    platform: Platform
    api_base_url: str | None = None
    sku_map: dict[str, str] = Field(default_factory=dict,
                                    examples=[{"43721382822039": "MUG-01"}])
    default_currency: str = Field(examples=["USD"])
    options: dict[str, Json] = Field(default_factory=dict,
                                     examples=[{"api_version": "2025-07"}])
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    last_delivery_at: Timestamp | None = None
    deliveries: int = 0
    writebacks_pending: int = 0
    writebacks_failed: int = 0
    writebacks_done: int = 0
    writebacks_submitted: int = Field(default=0, description="Amazon: feeds accepted, their"
                                      " processing report not read yet")
    poll_cursor: Timestamp | None = Field(default=None, description="Amazon: LastUpdatedAfter")
    poll_last_ok_at: Timestamp | None = None
    poll_last_error: str | None = None


class DeliverySeen(OpenModel):
    delivery_id: str
    topic: str
    external_order_id: str | None = None
    outcome: Literal["placed", "cancel_requested", "ignored", "unmappable"]
    reason: str | None = None
    received_at: Timestamp


class WriteBack(OpenModel):
    id: int
    order_key: str = Field(examples=["shop-us-1:5723984011"])
    action: Literal["shipped", "cancelled", "refunded"]
    ref: str = ""
    state: Literal["pending", "submitted", "done", "failed", "skipped"] = Field(
        description="submitted: Amazon accepted the feed, its processing report is awaited")
    attempts: int
    last_error: str | None = Field(default=None, description="why it failed (for a feed: the"
                                   " processing report's errors)")
    note: str | None = Field(default=None, description="what the platform said of a job done"
                             " (warnings; a refund already applied before)")
    feed_id: str | None = Field(default=None, description="Amazon's feedId", examples=["50001"])
    feed_document_id: str | None = None
    feed_type: str | None = Field(default=None, examples=["POST_PAYMENT_ADJUSTMENT_DATA"])
    feed_status: str | None = Field(default=None, description="processingStatus last seen",
                                    examples=["DONE"])
    submitted_at: Timestamp | None = None
    created_at: Timestamp
    done_at: Timestamp | None = None


class ChannelDetail(Channel):
    deliveries_recent: list[DeliverySeen]
    writebacks_recent: list[WriteBack]


class ProbeResult(BaseModel):
    store: str
    platform: Platform
    ok: bool = Field(description="the platform's API answered with these credentials")
    detail: str = Field(examples=["shopify API answered at https://shop.myshopify.com"])


class Requeued(BaseModel):
    store: str
    requeued: int = Field(description="failed write-backs set pending again")


class WebhookAnswer(BaseModel):
    """200: the delivery is committed (or was seen before), or it was a platform's ping."""

    delivery_id: str | None = None
    duplicate: bool | None = Field(default=None, description="seen before: nothing done again")
    outcome: Literal["placed", "cancel_requested", "ignored", "unmappable"] | None = None
    reason: str | None = Field(default=None, description="why ignored or unmappable")
    ping: bool | None = Field(default=None, description="WooCommerce's test delivery")
