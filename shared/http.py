"""Operators' HTTP shared by every service: auth for writes and personal data."""

from __future__ import annotations

import hmac

from fastapi import Header, HTTPException, status

from .settings import get_settings


def require_admin(authorization: str | None = Header(default=None)) -> None:
    """`Authorization: Bearer <SHOPKEEPER_ADMIN_TOKEN>`, or 401."""
    expected = get_settings().shopkeeper_admin_token
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token (SHOPKEEPER_ADMIN_TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )
