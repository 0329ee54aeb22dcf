"""The generic signed webhook, for custom storefronts that cannot reach Kafka: `POST
/orders/{store}` with our own `orders.placed` JSON, signed `X-Shopkeeper-Signature:
t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">` (the Stripe scheme), five minutes' tolerance
against replays. No write-back: such a storefront reads `orders.status` (or asks analytics)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, headers: Mapping[str, str],
           now: float | None = None) -> bool:
    """True when one v1 signature matches and t is within five minutes of now (either way)."""
    header = headers.get("x-shopkeeper-signature", "")
    parts = [p.strip().partition("=") for p in header.split(",")]
    ts = [v for k, _, v in parts if k == "t"]
    sigs = [v for k, _, v in parts if k == "v1"]
    if not secret or len(ts) != 1 or not sigs or not ts[0].isdigit():
        return False
    t = int(ts[0])
    if abs((time.time() if now is None else now) - t) > TOLERANCE_SECONDS:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected.encode(), s.encode()) for s in sigs)
