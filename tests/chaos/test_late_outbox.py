"""Scenario 8: an outbox row whose transaction commits late is still published, and in order
for its key (shared/outbox.py promises id order per key).

Under load, a transaction in intake's schema writes an `orders.status` row for key K the way a
handler does (`UnitOfWork.publish`) and stays open. Meanwhile rows for another key and a
later row for K commit. The other key's rows are published while the late transaction is open
(the relay does not stall behind it); once it commits, its row is published, and the storefront
sees K's rows in id order: the late one first."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from shared.contracts import OrderStatusChanged
from shared.settings import get_settings
from shared.topics import ORDERS_STATUS
from shared.uow import UnitOfWork
from tests.integration.helpers import eventually
from tools.storefront import Storefront

from .conftest import ORDERS, SMOKE_ORDERS, assert_clean, run_load

pytestmark = [pytest.mark.timeout(1800)]  # the marker chaos comes from conftest

STORE = "chaos-late"


def row(ext: str, seq: int) -> OrderStatusChanged:
    # on_hold: a status the verify checks do not count per step; seq tells the rows apart.
    return OrderStatusChanged(order_id=str(uuid.uuid4()), store=STORE, external_order_id=ext,
                              status="on_hold", reasons=[], details={"seq": seq})


async def late_outbox_row(shop: Storefront, hold_seconds: float
                          ) -> tuple[list[int], list[int]]:
    """The fault. Returns the seqs of K's rows the storefront saw while the late transaction
    was open, and all of them once it committed."""
    k_ext, other_ext = f"k-{uuid.uuid4().hex[:8]}", f"o-{uuid.uuid4().hex[:8]}"
    k, other = f"{STORE}:{k_ext}", f"{STORE}:{other_ext}"
    admin = get_settings().database_url
    late = await asyncpg.connect(admin, server_settings={"search_path": "intake"})
    quick = await asyncpg.connect(admin, server_settings={"search_path": "intake"})
    try:
        tx = late.transaction()
        await tx.start()
        held = UnitOfWork(late, "intake")  # the late transaction's unit of work
        await held.publish(ORDERS_STATUS, k, row(k_ext, 1))
        await held.finish()  # its row is inserted; the transaction stays open
        for key, r in ((other, row(other_ext, 1)), (k, row(k_ext, 2)),
                       (other, row(other_ext, 2))):
            async with UnitOfWork.transaction(quick, "intake") as uow:  # each commits at once
                await uow.publish(ORDERS_STATUS, key, r)

        async def others_out() -> bool:
            return len(shop.statuses.get(other, [])) >= 2
        await eventually(others_out, timeout=120, what="later rows of another key published")
        # The relay went past the late row and past K's later row: hold the transaction a while
        # longer under load, then commit it.
        await asyncio.sleep(hold_seconds)
        held_back = [e["details"]["seq"] for e in shop.statuses.get(k, [])]
        await tx.commit()
    finally:
        await late.close()
        await quick.close()

    async def k_out() -> bool:
        return len(shop.statuses.get(k, [])) >= 2
    await eventually(k_out, timeout=120, what="the late row and K's later row published")
    await asyncio.sleep(2)  # room for a wrongly doubled row to show
    return held_back, [e["details"]["seq"] for e in shop.statuses.get(k, [])]


async def test_an_outbox_row_committing_late_is_published_in_order_for_its_key(
        storefront: Storefront) -> None:
    await late_row_scenario(storefront, "outbox row committed late", ORDERS)


@pytest.mark.chaos_smoke
async def test_smoke_an_outbox_row_committing_late(storefront: Storefront) -> None:
    await late_row_scenario(storefront, "smoke: outbox row committed late", SMOKE_ORDERS)


async def late_row_scenario(storefront: Storefront, scenario: str, orders: int) -> None:
    seen: list[tuple[list[int], list[int]]] = []

    async def fault() -> None:
        t0 = time.monotonic()
        seen.append(await late_outbox_row(storefront, hold_seconds=5))
        print(f"late outbox row: K seen as {seen[-1]} in {time.monotonic() - t0:.1f}s", flush=True)
    outcome = await run_load(storefront, scenario, fault, orders=orders)
    assert_clean(outcome)
    (held_back, after), = seen
    # While the late row was uncommitted, K's later (committed) row must not have gone out.
    assert held_back == [], f"K's later row was published before the late one: {held_back}"
    assert after == [1, 2], f"K's rows published out of id order (or doubled/lost): {after}"
