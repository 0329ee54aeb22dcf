"""What analytics' HTTP answers (api.py), for OpenAPI and as a filter of each answer. The JSON
the dashboard reads is unchanged by these models: every field it reads is named, and a report's
rows (whose columns differ by report, docs/analytics.md) pass through as they are. CSV exports and
the dashboard's files are documents, not JSON."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.responses import Json, OpenModel, Timestamp


class TimelineEntry(BaseModel):
    status: str = Field(examples=["accepted"])
    occurred_at: Timestamp
    reasons: list[dict[str, Json]] = Field(examples=[[{"code": "high_value",
                                                       "message": "over 1000.00"}]])
    details: dict[str, Json]


class Timeline(BaseModel):
    """The order timeline of docs/contract.md."""

    order_id: str | None = Field(description="our order id; null until intake accepted it")
    store: str
    external_order_id: str
    status: str = Field(examples=["shipped"])
    timeline: list[TimelineEntry]


class FoundOrder(BaseModel):
    order_id: str | None
    store: str
    external_order_id: str
    customer_id: str | None
    country: str | None = Field(examples=["DE"])
    status: str
    placed_at: Timestamp | None
    status_at: Timestamp | None
    tracking_numbers: list[str]


class Found(BaseModel):
    orders: list[FoundOrder]


class Summary(BaseModel):
    """All-time counts from the all-time rollups."""

    orders_by_status: dict[str, int] = Field(examples=[{"shipped": 120, "delivered": 800}])
    rejection_reasons: dict[str, int] = Field(examples=[{"unknown_sku": 3}])
    hold_reasons: dict[str, int] = Field(examples=[{"high_value": 5}])


class Filters(BaseModel):
    """The filters a report was computed with (`from`/`to`: whole days, each store's own)."""

    from_: Timestamp | None = Field(alias="from", serialization_alias="from")
    to: Timestamp | None
    store: list[str]
    country: list[str]
    warehouse: list[str]
    carrier: list[str]


ReportRows = list[dict[str, Json]]


class Reports(BaseModel):
    """Every public report; each is a list of rows whose columns are the report's own."""

    filters: Filters
    reports: dict[str, ReportRows] = Field(
        examples=[{"orders_by_day": [{"day": "2026-03-01", "orders": 41, "sold": 39}]}])
    csv: dict[str, str] = Field(examples=[{"orders_by_day": "/reports/orders_by_day.csv"}])


class Report(BaseModel):
    report: str = Field(examples=["orders_by_day"])
    filters: Filters
    rows: ReportRows = Field(examples=[[{"day": "2026-03-01", "orders": 41, "sold": 39}]])


class Options(BaseModel):
    """What the dashboard's filters can choose from."""

    store: list[str]
    country: list[str]
    carrier: list[str]
    warehouse: list[str]


class StoreTimezone(OpenModel):
    store: str = Field(examples=["shenzhen-1"])
    timezone: str = Field(examples=["Asia/Shanghai"],
                          description="IANA name; the store's day starts at 00:00 there")
    changed_at: Timestamp
    refolding: bool = Field(description="true while the store's orders are being moved to the"
                                        " new zone's days (reports mix both meanwhile)")


class StoreTimezones(BaseModel):
    default: str = Field(examples=["UTC"], description="the zone of stores not listed")
    stores: list[StoreTimezone]


class TimezoneIn(BaseModel):
    timezone: str = Field(min_length=1, max_length=64, examples=["Asia/Shanghai"])
