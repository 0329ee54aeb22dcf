"""The hold watch: keeps the hold gauges current and logs each hold that outlives its SLA.

Every instance runs it; the gauges are read from the database, so all instances agree, and a
breach is claimed by one UPDATE, so it is logged and counted once whichever instance sees it.
"""

from __future__ import annotations

import asyncio
import logging

from shared.db import TRANSIENT_DB_ERRORS
from shared.service import Runtime

from . import metrics, store

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 5.0


async def watch_holds(runtime: Runtime) -> None:
    while True:
        try:
            n, oldest = await store.hold_stats(runtime.pool)
            metrics.HOLDS_OPEN.set(n)
            metrics.HOLD_OLDEST_SECONDS.set(oldest)
            for r in await store.mark_sla_breaches(runtime.pool):
                metrics.HOLD_SLA_BREACHES.labels(r["store"]).inc()
                log.warning("hold of order %s (store %s, %s) outlived its SLA of %ds: open for"
                            " %.0fs", r["order_id"], r["store"], ", ".join(r["codes"]),
                            r["sla_seconds"], r["age_seconds"])
        except asyncio.CancelledError:
            raise
        except TRANSIENT_DB_ERRORS as exc:
            log.debug("hold watch: database unavailable (%s)", exc)
        except Exception:
            log.exception("hold watch failed; retrying")
        await asyncio.sleep(INTERVAL_SECONDS)


async def start(runtime: Runtime) -> None:
    runtime.spawn(watch_holds(runtime), "intake-hold-watch")
