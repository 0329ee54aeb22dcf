"""The unit of work: what one transaction of any entry point holds (docs/messaging.md "The unit of
work").

Every entry point opens one: the consumer per run of events, an HTTP request that changes state,
a background job's pass. It holds

- the connection and its transaction (`uow.conn`);
- the outbox buffer: `uow.publish` / `uow.status` (and `cancelled`, `refund`, `charge`) are the
  only ways to emit an event; the rows go in with one statement before commit, in the order they
  were published;
- the cause of what is being emitted (`uow.caused_by(event)`, `uow.each(events)`): emitted events
  get ids derived from their cause, topic, key and rank (handling the same event again emits the
  same ids, so the inboxes downstream drop the repeat), and carry its correlation and causation
  ids;
- reference data: `uow.reference` (cached across units of work, exactly: shared/reference.py),
  `uow.memo` (once per unit of work), `uow.forget` (a writer's: read it afresh);
- before-commit hooks (`uow.collect`, `uow.before_commit`: work done once per run, in the same
  transaction) and after-commit hooks (`uow.after_commit`, `uow.count`, `uow.observe`: business
  metrics, log lines, wake-ups; a run that is rolled back and retried counts once).
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from decimal import Decimal
from typing import Any, TypeVar, cast

import asyncpg

from . import metrics, outbox, reference
from .contracts import (
    ChargeRequested,
    Event,
    InternalEvent,
    OrderStatusChanged,
    Reason,
    RefundIssued,
    WireModel,
    derived_id,
    money_text,
)
from .db import Conn, Read, read_all
from .logging import log_context
from .topics import ORDERS_STATUS, PAYMENTS_CHARGES, PAYMENTS_REFUNDS, Topic

log = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
E = TypeVar("E", bound=Event)
Hook = Callable[[], Awaitable[None]]

# Reasons quote what a sender wrote (a promo code, a note); quoted text is cut to this length.
QUOTE_CHARS = 200


def cut(text: str, limit: int = QUOTE_CHARS) -> str:
    """`text` quoted back to a sender, cut with an ellipsis at `limit` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class UnitOfWork:
    """One transaction's work (module docstring). Open one with `UnitOfWork.begin(pool, ...)`
    (acquires a connection) or `UnitOfWork.transaction(conn, ...)` (on a connection the caller
    holds, e.g. one with a session lock); the consumer opens one per run."""

    def __init__(self, conn: Conn, service: str, *, cause: str | None = None,
                 correlation_id: str | None = None, hook_cause: str | None = None,
                 cache: reference.ReferenceCache | None = None) -> None:
        self.conn = conn
        self.service = service
        self._cause = cause
        self._correlation = correlation_id
        self._causation: str | None = None
        self._hook_cause = hook_cause or cause
        self._ranks: dict[tuple[str, str, str | None], int] = {}
        self._rows: list[tuple[str, str | None, bytes, str]] = []
        self._memo: dict[Hashable, Any] = {}
        self._cache = reference.CACHE if cache is None else cache
        self._view: reference.ReferenceView | None = None
        self._changed: set[str] = set()  # reference names this unit of work changed (forget)
        self._hooks: dict[str, Hook] = {}
        self._collected: dict[str, Any] = {}
        self._after: list[Callable[[], None]] = []

    # --- opening and closing ----------------------------------------------------------------
    @classmethod
    @contextlib.asynccontextmanager
    async def begin(cls, pool: asyncpg.Pool, service: str, *, cause: str | None = None,
                    correlation_id: str | None = None,
                    cache: reference.ReferenceCache | None = None
                    ) -> AsyncIterator[UnitOfWork]:
        """A connection from `pool` and a transaction on it; commits when the block ends
        (before-commit hooks and the outbox flush first, after-commit hooks after)."""
        async with pool.acquire() as conn, cls.transaction(
                conn, service, cause=cause, correlation_id=correlation_id, cache=cache) as uow:
            yield uow

    @classmethod
    @contextlib.asynccontextmanager
    async def transaction(cls, conn: Conn, service: str, *, cause: str | None = None,
                          correlation_id: str | None = None,
                          hook_cause: str | None = None,
                          cache: reference.ReferenceCache | None = None
                          ) -> AsyncIterator[UnitOfWork]:
        """A transaction on `conn`, which must not be in one already (after-commit hooks must
        follow the real commit, not a savepoint's). `cache`: the reference cache (the
        process's unless given: tests play two instances with two)."""
        if conn.is_in_transaction():
            raise RuntimeError("a unit of work needs a connection outside any transaction")
        uow = cls(conn, service, cause=cause, correlation_id=correlation_id,
                  hook_cause=hook_cause, cache=cache)
        async with conn.transaction():
            yield uow
            await uow.finish()
        uow.committed()

    async def finish(self) -> None:
        """Before commit: run the before-commit hooks (in the order registered; a hook may
        register another), then insert the outbox rows in one statement."""
        done: set[str] = set()
        while len(done) < len(self._hooks):
            for name, hook in list(self._hooks.items()):
                if name in done:
                    continue
                done.add(name)
                with self.caused_by(f"{self._hook_cause}/before-commit/{name}"):
                    await hook()
        rows, self._rows = self._rows, []
        if len(rows) == 1:
            await self.conn.execute(outbox.INSERT, *rows[0])
        elif rows:
            await self.conn.execute(outbox.INSERT_MANY,
                                    *(list(col) for col in zip(*rows, strict=True)))

    def committed(self) -> None:
        """After commit: the after-commit hooks, in order; one that fails is logged, not
        raised (the transaction stands)."""
        if self._view is not None:
            self._view.committed(self._changed)
        hooks, self._after = self._after, []
        for fn in hooks:
            try:
                fn()
            except Exception:
                log.exception("an after-commit hook failed; the transaction is committed")

    # --- cause: ids and tracing of what is emitted ------------------------------------------
    @contextlib.contextmanager
    def caused_by(self, cause: Event | str) -> Iterator[None]:
        """Events published inside are caused by `cause`: an event handled (its id, correlation
        and the log context of its order), or a deterministic step of a job ("pack:<order>"),
        which keeps the unit's correlation id (a job spanning orders gives each order's own to
        `status(correlation_id=...)`)."""
        saved = (self._cause, self._correlation, self._causation)
        if isinstance(cause, str):
            self._cause, self._causation = cause, None
            ids: dict[str, Any] = {}
        else:
            self._cause = self._causation = str(cause.event_id)
            corr = getattr(cause, "correlation_id", None)
            self._correlation = str(corr or cause.event_id)
            ids = {"event_id": cause.event_id}
            for name in ("order_id", "order_key"):
                if getattr(cause, name, None):
                    ids[name] = getattr(cause, name)
        try:
            with log_context(**ids):
                yield
        finally:
            self._cause, self._correlation, self._causation = saved

    def each(self, events: Iterable[E]) -> Iterator[E]:
        """The events one by one, each the cause of what is published while it is current."""
        for event in events:
            with self.caused_by(event):
                yield event

    @property
    def correlation_id(self) -> str | None:
        return self._correlation

    @property
    def causation_id(self) -> str | None:
        return self._causation

    # --- emitting ---------------------------------------------------------------------------
    async def publish(self, topic: Topic | str, key: str | None, event: WireModel,
                      headers: dict[str, str] | None = None) -> None:
        """Write an event to the outbox, in this transaction (inserted before commit). Fills the
        tracing ids of an internal event and derives its id from the current cause."""
        if isinstance(event, InternalEvent):
            event = event.model_copy(update={
                "correlation_id": event.correlation_id or self._correlation,
                "causation_id": event.causation_id or self._causation,
            })
        if self._cause is not None and isinstance(event, Event):
            slot = (self._cause, str(topic), key)
            rank = self._ranks.get(slot, 0)
            self._ranks[slot] = rank + 1
            event = event.model_copy(update={"event_id": derived_id(*slot, rank)})
        row = (str(topic), key, event.model_dump_json().encode(), json.dumps(headers or {}))
        size = outbox.record_size(key, row[2], headers)
        if size > outbox.MAX_RECORD_BYTES:
            error = (f"record of {size} bytes is over the {outbox.MAX_RECORD_BYTES}-byte limit;"
                     " not published")
            log.error("outbox row for %s key %s quarantined at insert: %s. Inspect it with"
                      " `shopkeeper outbox quarantined`", topic, key, error)
            await self.conn.execute(outbox.INSERT_QUARANTINED, *row, error)
            return
        self._rows.append(row)

    async def status(self, *, order_id: str, store: str, external_order_id: str, status: str,
                     reasons: list[tuple[str, str]] | None = None,
                     details: dict[str, Any] | None = None,
                     correlation_id: str | None = None,
                     causation_id: str | None = None) -> None:
        """An `orders.status` change for the storefront (docs/contract.md); counted once per
        change after commit, labelled with the first (main) reason. `correlation_id`: the
        order's own, when the cause is not one of the order's events (a wave, a restock, a
        timer spanning orders); else the cause's. `causation_id` likewise (a timer's derived
        step id)."""
        await self.publish(ORDERS_STATUS, f"{store}:{external_order_id}", OrderStatusChanged(
            order_id=order_id, store=store, external_order_id=external_order_id, status=status,
            reasons=[Reason(code=c, message=cut(m)) for c, m in (reasons or [])],
            details=details or {}, correlation_id=correlation_id or self._correlation,
            causation_id=causation_id or self._causation))
        self.count(metrics.ORDER_STATUS, status, reasons[0][0] if reasons else "")

    async def cancelled(self, *, order_id: str, store: str, external_order_id: str,
                        reasons: list[tuple[str, str]], refund_due: Decimal,
                        currency: str, correlation_id: str | None = None,
                        causation_id: str | None = None) -> None:
        """An order is `cancelled` (docs/contract.md): the storefront hears it with the refund
        due, and the payment system gets the refund request for the money taken
        (`payments.refunds`, request `cancellation`; none when nothing was taken)."""
        await self.status(order_id=order_id, store=store, external_order_id=external_order_id,
                          status="cancelled", reasons=reasons,
                          details={"refund_due": money_text(refund_due)},
                          correlation_id=correlation_id, causation_id=causation_id)
        await self.refund(order_id=order_id, store=store, external_order_id=external_order_id,
                          request_id="cancellation", amount=refund_due, currency=currency,
                          reason=reasons[0][0] if reasons else "cancelled")

    async def refund(self, *, order_id: str, store: str, external_order_id: str,
                     request_id: str, amount: Decimal, currency: str, reason: str) -> None:
        """Money owed to the customer goes back: a `payments.refunds` request (nothing for 0)."""
        await self._money_request("refund", PAYMENTS_REFUNDS, amount, RefundIssued(
            order_id=order_id, store=store, external_order_id=external_order_id,
            request_id=request_id, amount=amount, currency=currency, reason=reason))

    async def charge(self, *, order_id: str, store: str, external_order_id: str,
                     charge_id: str, amount: Decimal, currency: str, reason: str) -> None:
        """Money the customer owes on top: a `payments.charges` request (nothing for 0)."""
        await self._money_request("charge", PAYMENTS_CHARGES, amount, ChargeRequested(
            order_id=order_id, store=store, external_order_id=external_order_id,
            charge_id=charge_id, amount=amount, currency=currency, reason=reason))

    async def _money_request(self, kind: str, topic: Topic, amount: Decimal,
                             request: RefundIssued | ChargeRequested) -> None:
        if amount <= 0:
            return
        await self.publish(topic, f"{request.store}:{request.external_order_id}", request)
        self.count(metrics.MONEY_REQUESTS, kind, request.reason)

    # --- reference data ---------------------------------------------------------------------
    async def reference(self, key: Hashable, load: Callable[[], Awaitable[T]], *,
                        tables: Sequence[str]) -> T:
        """Reference data read from the tables `tables` by `load()`, cached across units of
        work until any write to one of them (shared/reference.py): at most one statement per
        unit of work when cached (the versions), none more after the first use. Keys are a name
        or a tuple starting with it (one name, one set of tables). Once per unit of work, like
        `memo`; after `forget(name)` this unit of work reads the name itself (its own change),
        and never shares what it read. The value is shared: do not change it."""
        if key in self._memo:
            cached: T = self._memo[key]
            return cached
        name = reference.name_of(key)
        if name in self._changed:
            value = await load()
        else:
            if self._view is None:
                self._view = reference.ReferenceView(self._cache)
            shared, value = await self._view.read(self.conn, key, load, tables)
            if not shared:
                self._changed.add(name)
        self._memo[key] = value
        return value

    async def reference_rows(self, name: str, keys: Iterable[K],
                             load: Callable[[list[K]], Awaitable[Mapping[K, V]]], *,
                             tables: Sequence[str]) -> dict[K, V]:
        """Reference data by key (a product by SKU), each key cached on its own under `name`
        (as `reference`): `load(missing)` reads, in one statement, those of `keys` not cached
        at this unit of work's version. Returns the keys `load` found (an absent key is cached
        as absent). A name is read either by `reference` or by `reference_rows`."""
        wanted = sorted(set(keys))  # type: ignore[type-var]
        out: dict[K, V] = {}
        todo: list[Hashable] = []
        for k in wanted:
            slot = (name, "row", k)
            if slot in self._memo:
                if self._memo[slot] is not reference.ABSENT:
                    out[k] = self._memo[slot]
            else:
                todo.append(k)
        if not todo:
            return out

        async def load_any(missing: list[Hashable]) -> Mapping[Hashable, Any]:
            return cast(Mapping[Hashable, Any], await load(cast(list[K], missing)))
        if name in self._changed:
            found = await load_any(todo)
            values = {k: found.get(k, reference.ABSENT) for k in todo}
        else:
            if self._view is None:
                self._view = reference.ReferenceView(self._cache)
            shared, values = await self._view.read_many(self.conn, name, todo, load_any, tables)
            if not shared:
                self._changed.add(name)
        for key, value in values.items():
            self._memo[(name, "row", key)] = value
            if value is not reference.ABSENT:
                out[cast(K, key)] = value
        return out

    async def first_times(self, events: list[tuple[uuid.UUID, str]]) -> set[uuid.UUID]:
        """The run's inbox rows in one statement: the ids not handled before (an id twice in
        the run counts once; the caller handles its first occurrence only). The same statement
        reads the reference versions this unit of work will use: a run that reads reference
        data spends no statement of its own on them (docs/messaging.md)."""
        fresh, versions = await read_all(
            self.conn,
            Read("INSERT INTO inbox (event_id, topic) SELECT * FROM unnest($1::uuid[],"
                 " $2::text[]) ON CONFLICT DO NOTHING RETURNING event_id",
                 ([e for e, _ in events], [t for _, t in events]),
                 lambda rows: {r["event_id"] for r in rows}),
            Read(reference.VERSIONS, (), list))
        if self._view is None:
            self._view = reference.ReferenceView(self._cache)
        self._view.prime(versions)
        return cast(set[uuid.UUID], fresh)

    async def memo(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """`load()` once per unit of work for `key` (data that changes on the hot path, such as
        carriers' delivery scores; reference data that rarely changes: `reference`). Keys are a
        name or a tuple starting with it; a writer of that data calls `forget(name)`."""
        if key not in self._memo:
            self._memo[key] = await load()
        value: T = self._memo[key]
        return value

    def forget(self, name: str) -> None:
        """This unit of work changed the data of `name` (or wants it read again): what it
        memoized of it is dropped, and its reference data of that name is read from its own
        connection for the rest of the unit of work (never from, nor into, the cache)."""
        self._changed.add(name)
        for k in [k for k in self._memo
                  if k == name or (isinstance(k, tuple) and k[:1] == (name,))]:
            del self._memo[k]

    # --- hooks ------------------------------------------------------------------------------
    def before_commit(self, name: str, hook: Hook) -> None:
        """Call `hook()` once before commit, after the handlers (the first hook registered under
        `name` is kept). Events it publishes are caused by the run's first event and `name`. A
        failing hook fails the run like a handler would, so a hook must be a function of what
        the handlers collected, nothing else."""
        self._hooks.setdefault(name, hook)

    def collect(self, name: str, factory: Callable[[], T],
                flush: Callable[[T], Awaitable[None]]) -> T:
        """The collection called `name`, made by `factory()` on first use; `flush(it)` runs
        once before commit (a `before_commit` hook of the same name)."""
        if name not in self._collected:
            value = self._collected[name] = factory()
            self.before_commit(name, lambda: flush(value))
        collected: T = self._collected[name]
        return collected

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Call `fn()` once the transaction has committed (never if it rolls back)."""
        self._after.append(fn)

    def count(self, counter: Any, *labels: str, amount: float = 1) -> None:
        """`counter.labels(*labels).inc(amount)` after commit (a prometheus Counter)."""
        target = counter.labels(*labels) if labels else counter
        self.after_commit(lambda: target.inc(amount))

    def observe(self, histogram: Any, value: float, *labels: str) -> None:
        """`histogram.labels(*labels).observe(value)` after commit."""
        target = histogram.labels(*labels) if labels else histogram
        self.after_commit(lambda: target.observe(value))
