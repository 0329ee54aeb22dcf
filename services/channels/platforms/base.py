"""What every platform module has in common: the channel's configuration, what a delivery maps
to, the write-back job, and the one way calls go out (rate limit, 429, errors classified).

A platform module (shopify.py, woocommerce.py, amazon.py, generic.py) provides:
- for webhooks, `WEBHOOK` (an `HmacWebhook`: signature, delivery id and topic headers, the
  constant-time HMAC on the raw body) and `is_ping(body)`; api.py's `_platform_webhook` runs
  the sequence every platform shares;
- `map_order(cfg, order) -> dict` (an `orders.placed` value without event_id/occurred_at) and
  `inbound(cfg, topic, body) -> Inbound` for its webhook topics (mapping: pure, no I/O);
- `write_back(client, cfg, job) -> None | Submitted` raising `Retry` or `Failed` (I/O, through
  `call`); `Submitted` when the platform only accepted the work (Amazon's feeds): the job waits
  in `submitted` and the module's `check_feed` reads the result later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

import httpx

from .. import metrics
from ..ratelimit import TokenBucket, retry_after_seconds

CENT = Decimal("0.01")
Outcome = Literal["placed", "cancel_requested", "ignored", "unmappable"]


@dataclass(frozen=True)
class ChannelConfig:
    store: str
    platform: str
    api_base_url: str | None
    secrets: dict[str, Any]
    sku_map: dict[str, str]
    default_currency: str = "USD"
    options: dict[str, Any] = field(default_factory=dict)

    def secret(self, name: str) -> str:
        value = self.secrets.get(name) or self.secrets.get("credentials", {}).get(name)
        return str(value) if value else ""

    @property
    def credentials(self) -> dict[str, Any]:
        creds = self.secrets.get("credentials")
        return creds if isinstance(creds, dict) else {}


@dataclass(frozen=True)
class Inbound:
    """What one delivery becomes: an order (re-)placed, a cancellation, or nothing for us."""

    outcome: Outcome
    external_order_id: str | None = None
    value: dict[str, Any] | None = None
    reason: str | None = None
    order_name: str | None = None
    # Kept for write-back (e.g. Amazon's order item ids).
    platform_data: dict[str, Any] = field(default_factory=dict)


class Unmappable(ValueError):
    """The delivery cannot become an order; the message says which field and why."""


@dataclass(frozen=True)
class Job:
    """One write-back: `action` on the platform's order, with what orders.status said."""

    id: int
    store: str
    order_key: str
    action: Literal["shipped", "cancelled", "refunded"]
    platform_order_id: str
    details: dict[str, Any]
    order_data: dict[str, Any]
    # The job's ref (a refund's after-sales request id): with order_key and action, its identity.
    ref: str = ""


@dataclass(frozen=True)
class Submitted:
    """The platform accepted the work but does it later (Amazon's Feeds API): the job keeps the
    ids and waits in `submitted` until the processing result is read."""

    feed_id: str
    feed_document_id: str
    feed_type: str


class Retry(Exception):
    """A fault worth retrying (network, 5xx, 429); `after` seconds when the platform said."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class Failed(Exception):
    """The platform refused for good (4xx other than 429): an operator must look."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Skipped(Exception):
    """Nothing to write back for this action on this platform (said why)."""


# --- webhooks in -------------------------------------------------------------------------------
@dataclass(frozen=True)
class HmacWebhook:
    """How a platform signs and names its webhooks (Shopify and WooCommerce alike): a base64
    HMAC-SHA256 of the raw body with the webhook's secret in one header, the delivery id and the
    topic in others. Header names as the platform documents them (looked up in lower case)."""

    signature_header: str
    delivery_header: str
    topic_header: str

    def sign(self, secret: str, body: bytes) -> str:
        return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()

    def signed(self, headers: Mapping[str, str]) -> bool:
        return self.signature_header.lower() in headers

    def verify(self, secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
        """Constant-time, on the raw bytes; an empty secret verifies nothing."""
        given = headers.get(self.signature_header.lower(), "")
        return bool(secret) and hmac.compare_digest(self.sign(secret, body).encode(),
                                                    given.encode())

    def delivery_id(self, headers: Mapping[str, str]) -> str | None:
        return headers.get(self.delivery_header.lower()) or None

    def topic(self, headers: Mapping[str, str]) -> str:
        return headers.get(self.topic_header.lower(), "")


# --- mapping helpers (pure) -------------------------------------------------------------------
def money(value: Any, what: str) -> str:
    """A platform amount (string or number) as our two-decimal string; JPY's "1500" too."""
    if value is None or value == "":
        return "0.00"
    try:
        d = Decimal(str(value))
    except InvalidOperation as exc:
        raise Unmappable(f"{what} is not an amount: {str(value)[:40]!r}") from exc
    if not d.is_finite():
        raise Unmappable(f"{what} is not an amount: {str(value)[:40]!r}")
    return f"{d.quantize(CENT, ROUND_HALF_UP):.2f}"


def dec(value: str) -> Decimal:
    return Decimal(value)


def total(values: list[str]) -> str:
    return f"{sum((Decimal(v) for v in values), Decimal('0')):.2f}"


def lines_subtotal(lines: list[dict[str, Any]]) -> str:
    """Our subtotal is the lines' sum before discount (intake checks exactly that)."""
    return f"{sum((Decimal(ln['unit_price']) * ln['quantity'] for ln in lines), Decimal('0')):.2f}"


def resolve_sku(cfg: ChannelConfig, *candidates: Any) -> str:
    """The first candidate (SKU, variant id, product id...) named in sku_map, else the first
    non-empty one as it is, else a placeholder. An unknown SKU is rejected by intake as
    `unknown_sku` with its line named: a clear refusal the operator fixes in sku_map."""
    keys = [str(c) for c in candidates if c not in (None, "")]
    for k in keys:
        if k in cfg.sku_map:
            return cfg.sku_map[k][:64]
    if candidates and candidates[0] not in (None, ""):
        return str(candidates[0])[:64]
    return f"unmapped-{keys[0] if keys else 'line'}"[:64]


def shipping_option(*names: Any) -> str:
    text = " ".join(str(n) for n in names if n).lower()
    if any(w in text for w in ("express", "expedited", "next day", "nextday", "priority",
                               "overnight", "sameday", "same day", "secondday")):
        return "express"
    if any(w in text for w in ("economy", "saver", "freeeconomy", "slow")):
        return "economy"
    return "standard"


def payment_method(*names: Any) -> str:
    text = " ".join(str(n) for n in names if n).lower()
    if "paypal" in text:
        return "paypal"
    if "cod" in text.split() or "cash on delivery" in text or text == "cod":
        return "cod"
    if any(w in text for w in ("bank", "bacs", "wire", "transfer")):
        return "bank_transfer"
    return "card"


def customer_id(platform: str, native: Any, email: Any) -> str:
    """The platform's customer id, else a hash of the email (a guest checkout), else 'guest'."""
    if native not in (None, "", 0):
        return f"{platform}-{native}"[:64]
    if email:
        return f"{platform}-guest-{hashlib.sha256(str(email).lower().encode()).hexdigest()[:16]}"
    return f"{platform}-guest"


def forwarded_codes(cfg: ChannelConfig, codes: list[str]) -> list[str]:
    """The platform's discount codes as promo_codes, unless the channel's option
    `forward_discount_codes` is false: intake checks forwarded codes against its own promotions
    (an unknown one is `invalid_promo`, per the store's policy), while the discount amount is the
    platform's either way."""
    return codes if cfg.options.get("forward_discount_codes", True) else []


def text(value: Any, limit: int) -> str | None:
    if value is None or value == "":
        return None
    return str(value)[:limit]


def join_name(*parts: Any) -> str | None:
    name = " ".join(str(p) for p in parts if p)
    return name[:200] or None


EU = {"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
      "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"}


def ioss_for(cfg: ChannelConfig, country: str) -> str | None:
    """The store's IOSS number (channel option `ioss_number`) on orders shipped into the EU."""
    number = cfg.options.get("ioss_number")
    return str(number) if number and country in EU else None


# --- calls out ----------------------------------------------------------------------------------
async def call(client: httpx.AsyncClient, bucket: TokenBucket, platform: str, operation: str,
               method: str, url: str, **kw: Any) -> httpx.Response:
    """One call through the channel's bucket. 429 holds the bucket for Retry-After and raises
    Retry; 5xx and network faults raise Retry; other 4xx raise Failed with the platform's words."""
    await bucket.acquire()
    try:
        resp = await client.request(method, url, **kw)
    except httpx.HTTPError as exc:
        raise Retry(f"{operation}: {type(exc).__name__}: {exc}") from exc
    if resp.status_code == 429:
        metrics.RATE_LIMITED.labels(platform, operation).inc()
        after = retry_after_seconds(resp.headers.get("Retry-After"), 2.0)
        bucket.block_for(after)
        raise Retry(f"{operation}: 429 rate limited, retry after {after:.1f}s", after)
    if resp.status_code >= 500:
        raise Retry(f"{operation}: {resp.status_code} {resp.text[:200]}")
    if resp.status_code >= 400:
        raise Failed(f"{operation}: {resp.status_code} {resp.text[:300]}", resp.status_code)
    return resp


def tracking_url(carrier: str, number: str) -> str | None:
    templates = {
        "USPS": "https://tools.usps.com/go/TrackConfirmAction?tLabels={n}",
        "UPS": "https://www.ups.com/track?tracknum={n}",
        "DHL": "https://www.dhl.com/global-en/home/tracking.html?tracking-id={n}",
        "DHLPAKET": "https://www.dhl.de/de/privatkunden/pakete-empfangen/verfolgen.html?piececode={n}",
        "DPOST": "https://www.deutschepost.de/sendung/simpleQuery.html?form.sendungsnummer={n}",
        "CHINAPOST": "https://track.chinapost.com.cn/?trackNumber={n}",
        "YUN": "https://www.yuntrack.com/parcelTracking?id={n}",
    }
    t = templates.get(carrier.upper())
    return t.format(n=number) if t else None


CARRIER_NAMES = {"USPS": "USPS", "UPS": "UPS", "DHL": "DHL Express", "DHLPAKET": "DHL Paket",
                 "DPOST": "Deutsche Post", "CHINAPOST": "China Post", "YUN": "YunExpress"}


def all_parcels(details: dict[str, Any]) -> list[dict[str, Any]]:
    """Every parcel of a `shipped` status (carrier, service, tracking number, lines)."""
    parcels = [dict(p) for p in details.get("parcels") or [] if isinstance(p, dict)]
    if not parcels:
        raise Failed("shipped status names no parcel to write back")
    return parcels


def now() -> float:
    return time.time()
