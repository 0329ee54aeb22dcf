"""`fx.rates` for a service that compares money across currencies: its subscription (the rates
go into the service's own `fx_rates`, shared/migrations/0003_fx_rates.sql) and the rates as a
handler reads them (`rates`: reference data, cached across runs until `fx_rates` changes)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from .contracts import FxRatesPublished
from .messaging import Handlers
from .money import FxRates, load_rates, rates_from_message, store_rates
from .topics import FX_RATES
from .uow import UnitOfWork

log = logging.getLogger(__name__)

MEMO = "fx.rates"


def subscribe(handlers: Handlers,
              then: Callable[[UnitOfWork, FxRatesPublished], Awaitable[None]] | None = None
              ) -> None:
    """Keep this service's copy of the exchange rates: newest `as_of` per pair wins. `then`,
    when given, runs after each message that changed a rate, with the new rates already
    readable (intake reviews again the orders held for want of a rate)."""

    @handlers.on(FX_RATES)
    async def on_rates(uow: UnitOfWork, events: list[FxRatesPublished]) -> None:
        for event in uow.each(events):
            changed = await store_rates(uow.conn, rates_from_message(event.base, event.rates,
                                                                     event.as_of))
            log.info("exchange rates from %s as of %s: %d of %d pairs newer than what was"
                     " known", event.base, event.as_of.isoformat(), changed, len(event.rates))
            uow.forget(MEMO)
            if changed and then is not None:
                await then(uow, event)


async def rates(uow: UnitOfWork) -> FxRates:
    """The rates this service knows (cached across runs until `fx_rates` changes)."""
    return await uow.reference(MEMO, lambda: load_rates(uow.conn), tables=("fx_rates",))
