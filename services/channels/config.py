"""Channels' own settings: SHOPKEEPER_CHANNELS_<FIELD>, read through pydantic-settings (a bad
value stops the service naming the variable)."""

from __future__ import annotations

from functools import cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class ChannelsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPKEEPER_CHANNELS_", extra="ignore",
                                      case_sensitive=False, env_ignore_empty=True)

    # Largest webhook body; more is 413 `too_large` (the HTTP guard and the route both hold it).
    max_body_bytes: int = 2 * 1024 * 1024
    # Webhooks per second per client address before the HTTP guard answers 429 (bursts of 5x).
    # A platform sends every store's webhooks from a few addresses: the operators' limit of
    # SHOPKEEPER_HTTP_WRITES_PER_SECOND (20) would refuse a busy sale. 0: no limit.
    webhooks_per_second: float = 500.0
    # Tries of a write-back (backoff base ** attempt seconds, at least a 429's Retry-After).
    writeback_max_attempts: int = 10
    # The shortest pause of an idle write-back worker, and the longest it sleeps with no job
    # due and none queued by this instance (jobs queued wake it; those of another instance
    # and operators' retries wait at most this long).
    writeback_poll_seconds: float = 0.5
    writeback_idle_seconds: float = 5.0
    backoff_base: float = 2.0
    # Marketplace poll interval (a channel's option `poll_seconds` overrides) and stores polled
    # at once by one instance.
    poll_seconds: float = 60.0
    poll_concurrency: int = 3
    # Amazon feeds: first look at a submitted feed after this many seconds (a channel's option
    # `feed_poll_seconds` overrides), then less often (up to 10 minutes between looks); a feed
    # still unprocessed after `feed_max_hours` fails the job for an operator (never resent).
    feed_poll_seconds: float = 30.0
    feed_max_hours: float = 24.0


@cache
def channels_settings() -> ChannelsSettings:
    return ChannelsSettings()
