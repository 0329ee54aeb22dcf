"""The console's own settings (SHOPKEEPER_CONSOLE_*); the shared ones (admin token, ports, Kafka)
come from shared.settings."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPKEEPER_CONSOLE_", extra="ignore")

    # Secure cookies travel over HTTPS only: on in production (behind TLS); the local stack,
    # which serves plain http on 127.0.0.1, turns it off.
    cookie_secure: bool = True
    session_hours: float = 12.0
    # A user is locked out for lockout_seconds after max_failures wrong passwords in a row; one
    # address may fail at most ip_failures times per ip_window_seconds (any user) before 429.
    max_failures: int = 5
    lockout_seconds: float = 900.0
    ip_failures: int = 20
    ip_window_seconds: float = 300.0
    default_time_zone: str = "UTC"
    # Where people's browsers reach the analytics dashboard (its charts and reports): the
    # Dashboard page links it in the user's language. Unset: no link (its address inside the
    # platform, SHOPKEEPER_ANALYTICS_URL, is often not one a browser can open).
    analytics_public_url: str | None = None
    # Timeouts for the services' HTTP APIs.
    upstream_timeout_seconds: float = 10.0


@lru_cache
def console_settings() -> ConsoleSettings:
    return ConsoleSettings()
