"""One lock order per run (docs/messaging.md "One lock order per run"): a consumer run locks
everything it will lock before its first handler runs, in one global order, so no two runs of a
service can deadlock whatever mix of topics they hold.

Why: a run holds segments of several topics (reservations, then shipments, then reservations
again), and each handler locks its rows in key order; but two runs doing that segment by segment
lock in the order of their segments, and two instances could take A then B and B then A.

The rule, for a service that opts in (`Handlers(run_lock=name)`):

- every subscription declares, from its events alone, the keys its handler will lock
  (`locks=lambda events: RunLocks.of(orders=..., stock=...)`);
- before the run's handlers, the consumer takes, in one statement (`run_lock`, shared migration
  0006): the service's serial lock `name` *shared*, then one advisory lock per declared key in
  the order of the locks themselves. A run waits only there, in that order, and after it meets
  no lock another run holds (every row it touches is under a key it holds): no cycle;
- a subscription that cannot name its rows from its events (a restock refilling whichever
  backorders it finds) declares `EXCLUSIVE`, as does any subscription that declares nothing:
  its run takes the serial lock *exclusively*, so it is alone among the service's runs and may
  lock what it finds while running; it waits for the runs in flight and the next ones wait
  for it. Other transactions that lock several rows (HTTP requests, periodic jobs) take the
  same serial lock exclusively first (inventory's `store.lock_refill`).

A handler of a shared run must never take the serial lock itself (an upgrade from shared to
exclusive waits for the other shared holders, who may wait for it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .db import Conn


@dataclass(frozen=True)
class RunLocks:
    """What a run will lock: `keys` ("class:key" strings, e.g. "stock:SKU-1"), or everything
    (`exclusive`). Runs' declarations add up with `|`."""

    keys: frozenset[str] = frozenset()
    exclusive: bool = False

    @classmethod
    def of(cls, **classes: Iterable[object]) -> RunLocks:
        """`RunLocks.of(orders=[id, ...], stock=[sku, ...])`: the keys of each class."""
        return cls(frozenset(f"{name}:{key}" for name, keys in classes.items()
                             for key in keys))

    def __or__(self, other: RunLocks) -> RunLocks:
        return RunLocks(self.keys | other.keys, self.exclusive or other.exclusive)


EXCLUSIVE = RunLocks(exclusive=True)

LockDeclaration = Callable[[list[Any]], RunLocks]
"""`(events) -> RunLocks`: what a handler will lock for these events."""


def exclusive(events: list[Any]) -> RunLocks:
    """The declaration of a handler that finds what it locks while running."""
    return EXCLUSIVE


async def take(conn: Conn, serial: str, locks: RunLocks) -> None:
    """Take `locks` on `conn`'s transaction (held until it ends), as the module docstring says."""
    await conn.execute("SELECT run_lock($1, $2, $3::text[])", serial, locks.exclusive,
                       [] if locks.exclusive else sorted(locks.keys))
