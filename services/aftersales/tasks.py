"""Aftersales at start: the feedback tagger's dictionary loaded; then a background job, the
follow-up cases' KPIs as gauges every 30 seconds (every instance reports the same figures, read
from the shared table; take max() across instances)."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Gauge

from shared.db import TRANSIENT_DB_ERRORS
from shared.service import Runtime

from . import store, tagging

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 30.0

OPEN = Gauge("shopkeeper_aftersales_follow_ups_open", "Follow-up cases open")
UNASSIGNED = Gauge("shopkeeper_aftersales_follow_ups_unassigned", "Open follow-up cases nobody"
                   " is assigned to")
OLDEST = Gauge("shopkeeper_aftersales_follow_up_oldest_open_seconds",
               "Age of the oldest open follow-up case (0 when none is open)")


async def report(runtime: Runtime) -> None:
    async with runtime.pool.acquire() as conn:
        row = await store.follow_up_summary(conn)
    OPEN.set(row["open"])
    UNASSIGNED.set(row["unassigned"])
    OLDEST.set(row["oldest_open_seconds"] or 0)


async def run(runtime: Runtime) -> None:
    while True:
        try:
            await report(runtime)
        except asyncio.CancelledError:
            raise
        except TRANSIENT_DB_ERRORS as exc:
            log.warning("follow-up gauges not updated: %s; next try in %.0fs", exc,
                        INTERVAL_SECONDS)
        except Exception:
            log.exception("follow-up gauges failed; next try in %.0fs", INTERVAL_SECONDS)
        await asyncio.sleep(INTERVAL_SECONDS)


async def start(runtime: Runtime) -> None:
    # jieba loads its dictionary (a few seconds) on first use: here, before the consumer starts,
    # not inside the first feedback's transaction.
    await asyncio.to_thread(tagging.warm)
    runtime.spawn(run(runtime), "aftersales-follow-up-gauges")
