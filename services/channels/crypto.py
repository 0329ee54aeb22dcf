"""Channel secrets at rest: one Fernet token (AES-128-CBC + HMAC-SHA256, from `cryptography`) per
channel, keyed by SHOPKEEPER_CHANNELS_SECRET_KEY. Without it, the local stack derives a key from
the admin token and says so at start: fine for a laptop, not for production."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shared.settings import get_settings

log = logging.getLogger(__name__)
ENV = "SHOPKEEPER_CHANNELS_SECRET_KEY"


def _fernet() -> MultiFernet:
    """Several comma-separated keys rotate: the first encrypts, all decrypt."""
    raw = get_settings().shopkeeper_channels_secret_key
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys:
        digest = hashlib.sha256(
            b"shopkeeper-channels:" + get_settings().shopkeeper_admin_token.encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(k.encode()) for k in keys])


def key_is_configured() -> bool:
    return bool(get_settings().shopkeeper_channels_secret_key.strip())


def seal(secrets: dict[str, Any]) -> bytes:
    return _fernet().encrypt(json.dumps(secrets, sort_keys=True).encode())


def unseal(token: bytes) -> dict[str, Any]:
    try:
        value = json.loads(_fernet().decrypt(bytes(token)))
    except InvalidToken as exc:
        raise RuntimeError(
            f"channel secrets cannot be decrypted: {ENV} is not the key they were sealed with"
            " (restore the old key, first in the list, or re-enter the channel)") from exc
    return value if isinstance(value, dict) else {}
