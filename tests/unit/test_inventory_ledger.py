"""The stock ledger as a state machine (services/inventory/domain.py, the rules store.py's SQL
applies): whatever sequence of receipts, reservations (single and multi-line, all or nothing),
releases, dispatches, counts, damage, returns, substitutions, short picks, refurbished and
scrapped returns, drift and reconciliation happens, available never goes below zero, refurbished
units are never available, and the ledger adds up to every balance."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from services.inventory import domain
from services.inventory.domain import Balance, Movement, Refused

Key = tuple[str, str]
KEYS: list[Key] = [("MUG", "WH-LA"), ("MUG", "WH-FRA"), ("TEE", "WH-LA")]
keys = st.sampled_from(KEYS)
qty = st.integers(min_value=1, max_value=12)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.balance: dict[Key, Balance] = {k: Balance() for k in KEYS}
        self.ledger: list[tuple[Key, Movement]] = []
        self.orders: dict[int, list[tuple[Key, int]]] = {}
        self.drifted: set[Key] = set()
        self.next_order = 0

    def _record(self, key: Key, move: Movement) -> None:
        self.balance[key] = domain.apply(self.balance[key], move)
        self.ledger.append((key, move))

    # -- goods in and out ----------------------------------------------------------------------
    @rule(key=keys, q=st.integers(min_value=0, max_value=20))
    def receive(self, key: Key, q: int) -> None:
        self._record(key, domain.receive(self.balance[key], q))

    @rule(key=keys, q=qty)
    def restock_return(self, key: Key, q: int) -> None:
        self._record(key, domain.receive(self.balance[key], q, "return"))

    @rule(lines=st.lists(st.tuples(keys, qty), min_size=1, max_size=3, unique_by=lambda t: t[0]),
          substitution=st.booleans())
    def reserve_order(self, lines: list[tuple[Key, int]], substitution: bool) -> None:
        """All lines in one transaction, locks in key order: all reserved or none."""
        tentative = dict(self.balance)
        moves = []
        try:
            for key, q in sorted(lines):
                move = domain.reserve(tentative[key], q,
                                      "substitution" if substitution else "reserve")
                tentative[key] = domain.apply(tentative[key], move)
                moves.append((key, move))
        except Refused:
            assert any(self.balance[k].available < q for k, q in lines)
            return  # the savepoint rolls back: nothing changed
        for key, move in moves:
            self._record(key, move)
        self.orders[self.next_order] = sorted(lines)
        self.next_order += 1

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def cancel_releases(self, data: st.DataObject) -> None:
        order = data.draw(st.sampled_from(sorted(self.orders)))
        for key, q in self.orders.pop(order):
            self._record(key, domain.release(self.balance[key], q))

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def dispatch_commits(self, data: st.DataObject) -> None:
        order = data.draw(st.sampled_from(sorted(self.orders)))
        for key, q in self.orders.pop(order):
            self._record(key, domain.commit(self.balance[key], q))

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def short_pick_writes_off(self, data: st.DataObject) -> None:
        """A picker finds units of an order missing: they leave on_hand and the order's hold."""
        order = data.draw(st.sampled_from(sorted(self.orders)))
        lines = self.orders[order]
        i = data.draw(st.integers(min_value=0, max_value=len(lines) - 1))
        key, q = lines[i]
        missing = data.draw(st.integers(min_value=1, max_value=q))
        before = self.balance[key]
        self._record(key, domain.shortage(before, missing))
        assert self.balance[key].available == before.available
        lines[i] = (key, q - missing)
        self.orders[order] = [(k, n) for k, n in lines if n]
        if not self.orders[order]:
            del self.orders[order]

    @rule(key=keys, q=qty)
    def return_graded_refurbish(self, key: Key, q: int) -> None:
        before = self.balance[key]
        self._record(key, domain.refurbish(before, q))
        assert self.balance[key].available == before.available  # not sellable as new
        assert self.balance[key].refurbished == before.refurbished + q

    @rule(key=keys, q=qty)
    def return_graded_scrap(self, key: Key, q: int) -> None:
        before = self.balance[key]
        move = domain.scrap(before, q)
        self._record(key, move)
        assert self.balance[key] == before and move.units == q

    @rule(key=keys, counted=st.integers(min_value=0, max_value=40))
    def cycle_count(self, key: Key, counted: int) -> None:
        before = self.balance[key]
        move, drift = domain.count(before, counted)
        self._record(key, move)
        assert self.balance[key].on_hand == max(counted, before.reserved)
        assert drift == max(0, before.reserved - counted)

    @rule(key=keys, q=st.integers(min_value=0, max_value=30))
    def damage(self, key: Key, q: int) -> None:
        before = self.balance[key]
        move, short = domain.damage(before, q)
        self._record(key, move)
        assert self.balance[key].on_hand == max(before.on_hand - q, before.reserved)
        assert short == max(0, q - before.available)

    # -- drift and its repair ------------------------------------------------------------------
    @rule(key=keys, delta=st.integers(min_value=-5, max_value=5))
    def balance_edited_outside_the_ledger(self, key: Key, delta: int) -> None:
        """A manual UPDATE or a bug: the balance moves with no ledger row (CHECKs still hold)."""
        b = self.balance[key]
        new = Balance(max(b.reserved, b.on_hand + delta), b.reserved,
                      max(0, b.refurbished - delta))
        if new != b:
            self.balance[key] = new
            self.drifted.add(key)

    @rule()
    def reconcile_repairs(self) -> None:
        for key in KEYS:
            on_hand, reserved = self._sums(key)
            fix = domain.correction(self.balance[key], on_hand, reserved,
                                    self._refurbished(key))
            assert fix is None or key in self.drifted  # (two edits may cancel out)
            if fix is not None:
                self.ledger.append((key, fix))  # a new row; no row is ever edited
        self.drifted.clear()

    def _sums(self, key: Key) -> tuple[int, int]:
        on_hand = sum(m.on_hand_delta for k, m in self.ledger if k == key)
        reserved = sum(m.reserved_delta for k, m in self.ledger if k == key)
        return on_hand, reserved

    def _refurbished(self, key: Key) -> int:
        return sum(m.refurbished_delta for k, m in self.ledger if k == key)

    # -- what must always hold -----------------------------------------------------------------
    @invariant()
    def available_never_negative(self) -> None:
        for b in self.balance.values():
            assert b.reserved >= 0 and b.available >= 0 and b.refurbished >= 0

    @invariant()
    def ledger_adds_up_to_every_balance(self) -> None:
        for key in KEYS:
            if key not in self.drifted:
                assert self._sums(key) == (self.balance[key].on_hand, self.balance[key].reserved)
                assert self._refurbished(key) == self.balance[key].refurbished

    @invariant()
    def reserved_is_what_open_orders_hold(self) -> None:
        held: dict[Key, int] = defaultdict(int)
        for lines in self.orders.values():
            for key, q in lines:
                held[key] += q
        for key in KEYS:
            assert self.balance[key].reserved == held[key]


LedgerMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40,
                                           deadline=None)
TestLedgerStateMachine = LedgerMachine.TestCase
