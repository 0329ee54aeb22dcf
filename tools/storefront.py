"""Publish as a storefront would, and watch `orders.status` come back.

Used by the demo (`make run`), the `shopkeeper` command and the integration tests: a thin client
of the public contract, nothing internal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared import topics
from shared.dlq import topic_partitions

DEMO_ADDRESSES: dict[str, dict[str, Any]] = {
    "US": {"line1": "100 Main St", "city": "Austin", "region": "TX", "postal_code": "73301"},
    "CA": {"line1": "12 King St W", "city": "Toronto", "region": "ON", "postal_code": "M5H 1A1"},
    "MX": {"line1": "Av. Reforma 222", "city": "Ciudad de México", "region": "CDMX",
           "postal_code": "06600"},
    "BR": {"line1": "Rua A 10", "city": "São Paulo", "region": "SP", "postal_code": "01000-000"},
    "GB": {"line1": "10 Downing St", "city": "London", "region": None, "postal_code": "SW1A 2AA"},
    "DE": {"line1": "Unter den Linden 5", "city": "Berlin", "region": None,
           "postal_code": "10117"},
    "FR": {"line1": "5 Rue de Rivoli", "city": "Paris", "region": None, "postal_code": "75001"},
    "ES": {"line1": "Calle Mayor 1", "city": "Madrid", "region": None, "postal_code": "28013"},
    "IT": {"line1": "Via Roma 1", "city": "Roma", "region": "RM", "postal_code": "00184"},
    "NL": {"line1": "Damrak 1", "city": "Amsterdam", "region": None, "postal_code": "1012 LG"},
    "PL": {"line1": "ul. Marszałkowska 1", "city": "Warszawa", "region": None,
           "postal_code": "00-624"},
    "AU": {"line1": "1 George St", "city": "Sydney", "region": "NSW", "postal_code": "2000"},
    "JP": {"line1": "1-1 Chiyoda", "city": "Tokyo", "region": "Tokyo", "postal_code": "100-0001"},
    "KR": {"line1": "110 Sejong-daero", "city": "Seoul", "region": None, "postal_code": "04524"},
    "SG": {"line1": "1 Raffles Pl", "city": "Singapore", "region": None, "postal_code": "048616"},
    "MY": {"line1": "Jalan Ampang 1", "city": "Kuala Lumpur", "region": None,
           "postal_code": "50450"},
    "TH": {"line1": "Sukhumvit Rd 1", "city": "Bangkok", "region": None, "postal_code": "10110"},
    "PH": {"line1": "Ayala Ave 1", "city": "Makati", "region": None, "postal_code": "1226"},
    "ID": {"line1": "Jl. Thamrin 1", "city": "Jakarta", "region": None, "postal_code": "10310"},
    "VN": {"line1": "1 Le Loi", "city": "Ho Chi Minh City", "region": None,
           "postal_code": "700000"},
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def product(sku: str, price: str = "12.50", *, category: str = "home", weight_g: int = 350,
            dims: tuple[int, int, int] = (120, 90, 90), attributes: Iterable[str] = (),
            returnable: bool = True, active: bool = True, name: str | None = None
            ) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": now_iso(), "sku": sku,
            "name": name or sku.title(), "category": category, "price": price, "currency": "USD",
            "weight_g": weight_g, "dims_mm": {"l": dims[0], "w": dims[1], "h": dims[2]},
            "attributes": list(attributes), "hs_code": "6912.00", "origin_country": "CN",
            "returnable": returnable, "active": active}


def stock(sku: str, warehouse: str, quantity: int, kind: str = "received") -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": now_iso(), "sku": sku,
            "warehouse": warehouse, "kind": kind, "quantity": quantity,
            "reference": f"PO-{uuid.uuid4().hex[:8]}"}


def order(store: str, external_id: str, lines: list[tuple[str, int, str]], *,
          country: str = "US", shipping_option: str = "standard", customer_id: str | None = None,
          shipping_fee: str = "4.99", payment_status: str = "paid",
          promo_codes: list[str] | None = None, discount: str = "0.00",
          note: str | None = None, gift_message: str | None = None,
          gift_wrap: bool = False, currency: str = "USD") -> dict[str, Any]:
    # A new buyer per order unless told: tests must not look like one buyer's repeat orders
    # (intake's duplicate detection and fulfillment's merging act on those).
    customer_id = customer_id or f"c-{uuid.uuid4().hex[:10]}"
    subtotal = sum((Decimal(p) * q for _, q, p in lines), Decimal("0"))
    grand = subtotal - Decimal(discount) + Decimal(shipping_fee)
    address = {"name": "Ana Lima", "line2": None, "country": country,
               **DEMO_ADDRESSES.get(country, DEMO_ADDRESSES["US"])}
    return {
        "event_id": str(uuid.uuid4()), "occurred_at": now_iso(), "store": store,
        "external_order_id": external_id, "placed_at": now_iso(),
        "customer": {"id": customer_id, "name": "Ana Lima", "email": "ana@example.com",
                     "phone": "+5511999990000"},
        "shipping_address": address,
        "lines": [{"sku": s, "quantity": q, "unit_price": p} for s, q, p in lines],
        "currency": currency, "shipping_option": shipping_option,
        "totals": {"subtotal": f"{subtotal:.2f}", "discount": discount,
                   "shipping_fee": shipping_fee, "grand_total": f"{grand:.2f}"},
        "payment": {"method": "card", "status": payment_status},
        "promo_codes": promo_codes or [], "note": note,
        **({"gift_message": gift_message} if gift_message else {}),
        **({"gift_wrap": True} if gift_wrap else {}),
    }


def order_event(store: str, external_id: str, **fields: Any) -> dict[str, Any]:
    """cancel_requested, backorder_decisions, aftersales.requests, returns.received, feedback."""
    return {"event_id": str(uuid.uuid4()), "occurred_at": now_iso(), "store": store,
            "external_order_id": external_id, **fields}


def fx_rates(base: str, rates: dict[str, str], as_of: str | None = None) -> dict[str, Any]:
    """`fx.rates`: one `base` is worth `rates[currency]` of each currency (a finance system's
    daily rates)."""
    return {"event_id": str(uuid.uuid4()), "occurred_at": now_iso(), "base": base,
            "rates": rates, "as_of": as_of or now_iso()}


def tracking(carrier: str, number: str, status: str, occurred_at: str | None = None
             ) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": occurred_at or now_iso(),
            "carrier": carrier, "tracking_number": number, "status": status,
            "location": "Hub", "description": status.replace("_", " ")}


class Storefront:
    """A producer for the inbound topics and a watcher of `orders.status` (from the end of the
    log at start, every partition, no consumer group)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                         enable_idempotence=True, linger_ms=0)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                         group_id=None)
        self.statuses: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.refunds: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        parts = []
        for t in (topics.ORDERS_STATUS.name, topics.PAYMENTS_REFUNDS.name):
            parts.extend(await topic_partitions(self.consumer, t))
        self.consumer.assign(parts)
        await self.consumer.seek_to_end(*parts)
        for tp in parts:  # resolve positions now, so nothing published after start is missed
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._watch())

    async def _partitions(self, topic: str) -> set[int]:
        for _ in range(50):
            await self.consumer._client.force_metadata_update()
            parts = self.consumer.partitions_for_topic(topic)
            if parts:
                return parts
            await asyncio.sleep(0.2)
        raise RuntimeError(f"topic {topic} not found on {self.bootstrap}; run `make up` first")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        # A fetch timed out under load surfaces here as its future's cancellation (aiokafka's
        # consumer.stop waits for it): the storefront is closing anyway.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.consumer.stop()
        await self.producer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _watch(self) -> None:
        async for record in self.consumer:
            try:
                value = json.loads(record.value)
            except (ValueError, RecursionError):  # not ours: poison from a fault test
                continue
            if not isinstance(value, dict) or (record.topic == "orders.status"
                                               and "status" not in value):
                continue
            await self._record(record.topic, record.key.decode() if record.key else "", value,
                               record.timestamp)

    async def _record(self, topic: str, key: str, value: dict[str, Any],
                      published_ms: int | None = None) -> None:
        """`published_ms`: the record's timestamp (when its producer sent it, ms since epoch)."""
        target = self.statuses if topic == topics.ORDERS_STATUS.name else self.refunds
        async with self._changed:
            target[key].append(value)
            self._changed.notify_all()

    async def publish(self, topic: str, key: str | None, value: dict[str, Any] | bytes) -> None:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        await self.producer.send_and_wait(topic, raw, key=key.encode() if key else None)

    async def wait_for(self, key: str, status: str, timeout: float = 60.0) -> dict[str, Any]:
        """The first `orders.status` event with this status for the order."""
        async def found() -> dict[str, Any]:
            async with self._changed:
                while True:
                    for ev in self.statuses.get(key, []):
                        if ev["status"] == status:
                            return ev
                    await self._changed.wait()
        try:
            return await asyncio.wait_for(found(), timeout)
        except TimeoutError:
            seen = [e["status"] for e in self.statuses.get(key, [])]
            raise AssertionError(f"{key}: no {status!r} within {timeout}s; saw {seen}") from None

    def timeline(self, key: str) -> list[dict[str, Any]]:
        """The order's `orders.status` events as a storefront following the contract applies
        them: an `event_id` seen before is already handled (docs/contract.md), so a step sent
        again (a relay retry, a restore's re-read) is left out. `statuses` keeps everything."""
        seen: set[str] = set()
        out = []
        for e in self.statuses.get(key, []):
            event_id = e.get("event_id")
            if isinstance(event_id, str):  # a bad value (the fuzz scenario's) is kept as it is
                if event_id in seen:
                    continue
                seen.add(event_id)
            out.append(e)
        return out

    def seen(self, key: str) -> list[str]:
        return [e["status"] for e in self.statuses.get(key, [])]
