"""Response models of the operators' HTTP, for the OpenAPI document each service serves at
`/docs` and `/openapi.json`, and as a filter: a route answers with the fields its model names.

Timestamps and money keep the wire format they always had: timestamps as ISO 8601 strings
(`datetime.isoformat()`), money as decimal strings ("12.50"), so that no client sees a change
of format; the OpenAPI document still says what they are (`format: date-time`, a pattern).

A model whose rows come from `SELECT *` or carry free-form JSON (a rule's inputs, a carrier
choice's trace) names the fields an operator relies on and lets the rest through
(`OpenModel`), so a column added by a migration is not silently dropped from an answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time",
                                           "examples": ["2026-03-01T09:30:00+00:00"]})]
Money = Annotated[str, WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d+)?$",
                                       "examples": ["12.50"]})]
# A timestamp column returned as it is read: written as `isoformat()`, as before.
IsoDatetime = Annotated[datetime, PlainSerializer(lambda d: d.isoformat(), return_type=str,
                                                  when_used="json")]
Json = Any  # free-form JSON (a rule's inputs, a trace): described by the route's docs


class OpenModel(BaseModel):
    """A row whose listed fields are documented; other columns pass through unchanged."""

    model_config = ConfigDict(extra="allow")


class Alive(BaseModel):
    status: str = Field(examples=["alive"])


class ReadyChecks(OpenModel):
    postgres: bool | str | None = Field(default=None, description="true, or why not")
    kafka_consumer: bool | None = None
    consumer_lag: int | None = Field(default=None, description="messages behind, all topics")
    consumer_progressing: bool | None = None
    outbox_relay: str | None = Field(default=None, examples=["ok"])
    outbox_quarantined: int | None = None
    infrastructure_fault: str | None = Field(default=None, examples=["none"])
    started: bool | None = Field(default=None, description="false until the lifespan has run")


class Ready(BaseModel):
    """200 when the instance should get traffic and its partitions, else 503 with the same body."""

    ready: bool
    checks: ReadyChecks


class QuarantinedRow(OpenModel):
    id: int
    topic: str
    key: str | None = None
    size: int | None = Field(default=None, description="bytes of the value (not shown)")
    error: str | None = None
    created_at: Timestamp
    quarantined_at: Timestamp


class QuarantinedRows(BaseModel):
    service: str = Field(examples=["inventory"])
    rows: list[QuarantinedRow]


class Released(BaseModel):
    released: int = Field(description="the outbox row id, queued for publishing again")


class FxRate(BaseModel):
    base: str = Field(examples=["USD"])
    quote: str = Field(examples=["CNY"])
    rate: str = Field(examples=["7.1034"], description="one `base` is `rate` `quote`")
    as_of: Timestamp
