"""The shared `fx.rates` subscription (shared/fx.py) as a run handler, against Postgres alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared import fx
from shared.contracts import FxRatesPublished
from shared.messaging import Handlers
from shared.topics import FX_RATES
from shared.uow import UnitOfWork


async def test_a_run_of_rates_keeps_the_newest_per_pair_and_the_next_read_sees_it(
        service_db: Any) -> None:
    """Given a run of two `fx.rates` events for EUR where the older one comes second, when the
    run is handled, then the newer rate stands, and a unit of work reading the rates after the
    handler in the same transaction sees it (the memo was forgotten)."""
    handlers = Handlers()
    fx.subscribe(handlers)
    handler = handlers.subscriptions[FX_RATES.name].handler
    now = datetime.now(UTC)
    newer = FxRatesPublished(base="EUR", rates={"USD": Decimal("1.10")}, as_of=now)
    older = FxRatesPublished(base="EUR", rates={"USD": Decimal("1.01")},
                             as_of=now - timedelta(days=1))
    async with service_db("intake") as db:
        seen: list[Decimal] = []

        async def handle_then_read(uow: UnitOfWork, events: list[Any]) -> None:
            await fx.rates(uow)  # memoized before the handler: must be forgotten by it
            await handler(uow, events)
            rates = await fx.rates(uow)
            conversion = rates.convert(Decimal("100"), "EUR", "USD")
            assert conversion is not None
            seen.append(conversion.amount)

        assert await db.run(handle_then_read, [newer, older], FX_RATES.name) == []
        assert seen == [Decimal("110.00")]
