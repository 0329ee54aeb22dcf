"""Analytics' rules: fold an order's facts into a view, and compute the KPIs a shop manager runs on.

Pure: no Kafka, no SQL. The store loads facts (one row per event, kept once per `event_id`), this
module folds them in `occurred_at` order, never arrival order, so a late or re-delivered event
gives the same answer as one that came on time. Every KPI is a function of the folded views, so
the unit tests feed hand-built event sequences and check known answers.

The service answers reports from rollups (rollups.py, reports.py); this recompute over the folded
views is kept as the oracle the tests hold the rollups to, and `rollups.contribution` uses the
same fold.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from itertools import combinations
from typing import Any

FINAL_STATUSES = frozenset({"delivered", "rejected", "cancelled", "refunded", "return_rejected"})
NOT_SOLD = frozenset({"rejected", "cancelled"})
RETURN_KINDS = frozenset({"return", "exchange"})
# What a carrier promises when logistics does not say (ShippedParcel.promised_days absent).
DEFAULT_PROMISE_DAYS = {"economy": 12, "standard": 7, "express": 3}


# --- facts: one per event, as the store loads them ---------------------------------------------

@dataclass(frozen=True)
class Fact:
    event_id: str
    at: datetime


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int
    unit_price: Decimal = Decimal("0")


@dataclass(frozen=True)
class Placed(Fact):
    store: str
    external_order_id: str
    customer_id: str
    country: str
    placed_at: datetime
    lines: tuple[Line, ...]
    grand_total: Decimal
    currency: str
    shipping_option: str = "standard"


@dataclass(frozen=True)
class Status(Fact):
    status: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParcelShipped:
    parcel_id: str
    warehouse: str
    carrier: str
    service: str
    tracking_number: str
    lines: tuple[Line, ...] = ()
    cost: Decimal | None = None
    promised_days: int | None = None


@dataclass(frozen=True)
class Shipped(Fact):
    parcels: tuple[ParcelShipped, ...]


@dataclass(frozen=True)
class Tracked(Fact):
    tracking_number: str
    status: str


@dataclass(frozen=True)
class Requested(Fact):
    request_id: str
    kind: str
    reason: str
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class Refunded(Fact):
    request_id: str
    amount: Decimal
    currency: str
    reason: str


@dataclass(frozen=True)
class Rated(Fact):
    rating: int


# --- the view of one order ---------------------------------------------------------------------

@dataclass
class ParcelView:
    parcel: ParcelShipped
    shipped_at: datetime
    delivered_at: datetime | None = None
    last_tracking: str | None = None
    last_tracking_at: datetime | None = None


@dataclass
class OrderView:
    key: str
    store: str = ""
    external_order_id: str = ""
    customer_id: str | None = None
    country: str | None = None
    placed_at: datetime | None = None
    lines: tuple[Line, ...] = ()
    grand_total: Decimal = Decimal("0")
    currency: str = ""
    shipping_option: str = "standard"
    statuses: list[Status] = field(default_factory=list)
    parcels: dict[str, ParcelView] = field(default_factory=dict)
    requests: dict[str, Requested] = field(default_factory=dict)
    refunds: list[Refunded] = field(default_factory=list)
    rating: Rated | None = None

    @property
    def status(self) -> str | None:
        return self.statuses[-1].status if self.statuses else None

    @property
    def started_at(self) -> datetime | None:
        """When the order began: placed_at, else its first status."""
        if self.placed_at is not None:
            return self.placed_at.astimezone(UTC)
        return self.statuses[0].at.astimezone(UTC) if self.statuses else None

    def first(self, status: str) -> Status | None:
        return next((s for s in self.statuses if s.status == status), None)

    def ever(self, status: str) -> bool:
        return self.first(status) is not None

    @property
    def sold(self) -> bool:
        """Counts as a sale: seen as placed and never rejected or cancelled."""
        return bool(self.lines) and not any(s.status in NOT_SOLD for s in self.statuses)

    @property
    def warehouses(self) -> set[str]:
        return {p.parcel.warehouse for p in self.parcels.values()}

    @property
    def carriers(self) -> set[str]:
        return {p.parcel.carrier for p in self.parcels.values()}


def fold(key: str, facts: Iterable[Fact], tracking: Iterable[Tracked] = ()) -> OrderView:
    """One order's view from its facts, in `occurred_at` order (ties by event id, so the answer
    never depends on arrival), each `event_id` once. `tracking` are the carrier scans of its
    tracking numbers, which arrive keyed by tracking number, possibly before the shipment."""
    view = OrderView(key=key)
    store, _, ext = key.partition(":")
    view.store, view.external_order_id = store, ext
    placed_seen = False
    for f in _ordered(facts):
        if isinstance(f, Placed):
            # A re-sent order keeps its first version, as intake does.
            if placed_seen:
                continue
            placed_seen = True
            view.customer_id, view.country, view.placed_at = f.customer_id, f.country, f.placed_at
            view.lines, view.grand_total, view.currency = f.lines, f.grand_total, f.currency
            view.shipping_option = f.shipping_option
        elif isinstance(f, Status):
            view.statuses.append(f)
        elif isinstance(f, Shipped):
            for p in f.parcels:
                view.parcels.setdefault(p.parcel_id, ParcelView(p, f.at))
        elif isinstance(f, Requested):
            view.requests.setdefault(f.request_id, f)
        elif isinstance(f, Refunded):
            view.refunds.append(f)
        elif isinstance(f, Rated):
            view.rating = f  # the latest rating counts
    by_number = {p.parcel.tracking_number: p for p in view.parcels.values()}
    for t in _ordered(tracking):
        assert isinstance(t, Tracked)
        pv = by_number.get(t.tracking_number)
        if pv is None:
            continue
        pv.last_tracking, pv.last_tracking_at = t.status, t.at
        if t.status == "delivered" and pv.delivered_at is None:
            pv.delivered_at = t.at
    return view


def _ordered(facts: Iterable[Fact]) -> list[Fact]:
    unique = {f.event_id: f for f in facts}
    return sorted(unique.values(), key=lambda f: (f.at, f.event_id))


# --- filters -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    start: datetime | None = None
    end: datetime | None = None
    stores: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()
    warehouses: frozenset[str] = frozenset()
    carriers: frozenset[str] = frozenset()


def select(views: Iterable[OrderView], f: Filters) -> list[OrderView]:
    out = []
    for v in views:
        at = v.started_at
        if at is None:
            continue
        if (f.start and at < f.start) or (f.end and at >= f.end):
            continue
        if f.stores and v.store not in f.stores:
            continue
        if f.countries and v.country not in f.countries:
            continue
        if f.warehouses and not (v.warehouses & f.warehouses):
            continue
        if f.carriers and not (v.carriers & f.carriers):
            continue
        out.append(v)
    return out


# --- KPIs --------------------------------------------------------------------------------------

def ranked(counts: Counter[str]) -> dict[str, int]:
    """Most first, ties by name (a report reads the same however the facts were loaded)."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def last_days(now: datetime, n: int) -> tuple[datetime, datetime]:
    """The last `n` whole UTC days, today included: rollups are by day."""
    today = datetime.combine(now.astimezone(UTC).date(), time.min, UTC)
    return today - timedelta(days=n - 1), today + timedelta(days=1)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (the value at rank ceil(p/100 * n)): always an observed value."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _hours(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 3600


def orders_by_status(views: Sequence[OrderView]) -> dict[str, int]:
    return ranked(Counter(v.status or "placed" for v in views))


def orders_by_day(views: Sequence[OrderView]) -> list[dict[str, Any]]:
    days: dict[str, Counter[str]] = defaultdict(Counter)
    for v in views:
        at = v.started_at
        assert at is not None
        day = at.date().isoformat()
        days[day]["orders"] += 1
        if v.sold:
            days[day]["sold"] += 1
    return [{"day": d, "orders": c["orders"], "sold": c["sold"]} for d, c in sorted(days.items())]


def reason_counts(views: Sequence[OrderView], status: str) -> dict[str, int]:
    """Each order counted once per reason it got `status` for."""
    counts: Counter[str] = Counter()
    for v in views:
        codes = {r for s in v.statuses if s.status == status for r in s.reasons}
        counts.update(codes)
    return ranked(counts)


def review(views: Sequence[OrderView]) -> dict[str, Any]:
    decided = [v for v in views if v.ever("accepted") or v.ever("rejected")]
    accepted = sum(1 for v in decided if v.ever("accepted"))
    return {"reviewed": len(decided), "accepted": accepted,
            "rejected": sum(1 for v in decided if v.ever("rejected") and not v.ever("accepted")),
            "acceptance_rate": rate(accepted, len(decided))}


def holds(views: Sequence[OrderView], now: datetime) -> dict[str, Any]:
    """Hold rate: orders that were ever on hold. Hold age: from `on_hold` to the next status, or to
    `now` for the orders still waiting."""
    ages: list[float] = []
    open_ages: list[float] = []
    for v in views:
        for i, s in enumerate(v.statuses):
            if s.status != "on_hold":
                continue
            nxt = next((t for t in v.statuses[i + 1:] if t.status != "on_hold"), None)
            age = _hours(s.at, nxt.at if nxt else now)
            ages.append(age)
            if nxt is None:
                open_ages.append(age)
            break
    return {"held": len(ages), "hold_rate": rate(len(ages), len(views)),
            "held_now": len(open_ages),
            "hold_age_p50_h": _round(percentile(ages, 50)),
            "hold_age_max_h": _round(max(ages) if ages else None),
            "oldest_open_hold_h": _round(max(open_ages) if open_ages else None)}


def stock(views: Sequence[OrderView]) -> dict[str, Any]:
    """Backorder rate: orders that went short at least once, of the orders stock was decided for.
    Fill rate: orders reserved at the first try (never backordered), of the same."""
    decided = [v for v in views if v.ever("reserved") or v.ever("backordered")]
    backordered = sum(1 for v in decided if v.ever("backordered"))
    return {"stock_decided": len(decided), "backordered": backordered,
            "backorder_rate": rate(backordered, len(decided)),
            "fill_rate": rate(len(decided) - backordered, len(decided)),
            "backordered_now": sum(1 for v in views if v.status == "backordered")}


def shipping(views: Sequence[OrderView], sla_hours: float) -> dict[str, Any]:
    """Placed -> shipped lead time (hours) and the share shipped within the SLA."""
    leads = []
    for v in views:
        shipped = v.first("shipped")
        if shipped is not None and v.started_at is not None:
            leads.append(_hours(v.started_at, shipped.at))
    on_time = sum(1 for h in leads if h <= sla_hours)
    return {"shipped": len(leads), "placed_to_shipped_p50_h": _round(percentile(leads, 50), 6),
            "placed_to_shipped_p90_h": _round(percentile(leads, 90), 6),
            "ship_sla_h": sla_hours, "shipped_on_time": on_time,
            "on_time_ship_rate": rate(on_time, len(leads))}


def promise_days(v: OrderView, p: ParcelShipped) -> int:
    if p.promised_days is not None:
        return p.promised_days
    return DEFAULT_PROMISE_DAYS.get(v.shipping_option, DEFAULT_PROMISE_DAYS["standard"])


def carriers(views: Sequence[OrderView]) -> list[dict[str, Any]]:
    """Per carrier service: parcels, delivered, delivered within the promise, cost per parcel
    (over the parcels whose cost logistics reported)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for v in views:
        for pv in v.parcels.values():
            p = pv.parcel
            r = rows.setdefault((p.carrier, p.service), {
                "carrier": p.carrier, "service": p.service, "parcels": 0, "delivered": 0,
                "on_time": 0, "exceptions": 0, "cost_total": Decimal("0"), "cost_samples": 0,
                "promise_reported": 0})
            r["parcels"] += 1
            if p.promised_days is not None:
                r["promise_reported"] += 1
            if p.cost is not None:
                r["cost_total"] += p.cost
                r["cost_samples"] += 1
            if pv.last_tracking in ("exception", "lost", "returned_to_sender", "failed_attempt"):
                r["exceptions"] += 1
            if pv.delivered_at is not None:
                r["delivered"] += 1
                if pv.delivered_at - pv.shipped_at <= timedelta(days=promise_days(v, p)):
                    r["on_time"] += 1
    out = []
    for r in sorted(rows.values(), key=lambda r: (-r["parcels"], r["carrier"], r["service"])):
        samples = r.pop("cost_samples")
        total = r.pop("cost_total")
        r["on_time_delivery_rate"] = rate(r["on_time"], r["delivered"])
        r["cost_per_parcel"] = f"{(total / samples):.2f}" if samples else None
        r["cost_samples"] = samples
        out.append(r)
    return out


def carrier_scores(views: Sequence[OrderView]) -> list[dict[str, Any]]:
    """The feedback to logistics: on-time delivery by carrier, service and destination country."""
    rows: dict[tuple[str, str, str], list[int]] = {}
    for v in views:
        for pv in v.parcels.values():
            if pv.delivered_at is None:
                continue
            p = pv.parcel
            r = rows.setdefault((p.carrier, p.service, v.country or ""), [0, 0])
            r[1] += 1
            if pv.delivered_at - pv.shipped_at <= timedelta(days=promise_days(v, p)):
                r[0] += 1
    return [{"carrier": c, "service": s, "country": k, "on_time_rate": round(n / m, 4),
             "samples": m} for (c, s, k), (n, m) in sorted(rows.items())]


def returns(views: Sequence[OrderView]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Return rate by SKU (units asked back of units sold) and return requests by reason."""
    sold: Counter[str] = Counter()
    back: Counter[str] = Counter()
    reasons_by_sku: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: Counter[str] = Counter()
    for v in views:
        if v.sold or v.ever("shipped"):
            for ln in v.lines:
                sold[ln.sku] += ln.quantity
        for r in v.requests.values():
            if r.kind not in RETURN_KINDS:
                continue
            reasons[r.reason] += 1
            for ln in r.lines:
                back[ln.sku] += ln.quantity
                reasons_by_sku[ln.sku][r.reason] += ln.quantity
    rows = [{"sku": sku, "sold": sold[sku], "returned": back[sku],
             "return_rate": rate(back[sku], sold[sku]),
             "reasons": ", ".join(f"{k} {n}" for k, n in ranked(reasons_by_sku[sku]).items())}
            for sku in sorted(set(sold) | set(back), key=lambda s: (-back[s], s))]
    return rows, ranked(reasons)


def refunds(views: Sequence[OrderView]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], list[Any]] = {}
    for v in views:
        for r in v.refunds:
            acc = rows.setdefault((r.currency, r.reason), [0, Decimal("0")])
            acc[0] += 1
            acc[1] += r.amount
    return [{"currency": c, "reason": why, "refunds": n, "amount": f"{a:.2f}"}
            for (c, why), (n, a) in sorted(rows.items())]


def ratings(views: Sequence[OrderView]) -> dict[str, Any]:
    values = [v.rating.rating for v in views if v.rating is not None]
    dist = Counter(values)
    return {"ratings": len(values),
            "average_rating": round(sum(values) / len(values), 2) if values else None,
            "distribution": {str(k): dist.get(k, 0) for k in range(1, 6)}}


def _customers(views: Sequence[OrderView]) -> dict[str, list[OrderView]]:
    by: dict[str, list[OrderView]] = defaultdict(list)
    for v in views:
        if v.customer_id and v.sold:
            by[v.customer_id].append(v)
    return by


def repeat_customers(views: Sequence[OrderView]) -> dict[str, Any]:
    by = _customers(views)
    repeat = sum(1 for orders in by.values() if len(orders) >= 2)
    return {"customers": len(by), "repeat_customers": repeat,
            "repeat_customer_rate": rate(repeat, len(by))}


def rfm_segment(recency_days: float, frequency: int) -> str:
    """Rule-based RFM segments a shop manager can read (monetary is reported, not segmented on)."""
    if frequency >= 3 and recency_days <= 30:
        return "champions"
    if frequency >= 2 and recency_days <= 60:
        return "loyal"
    if frequency == 1 and recency_days <= 30:
        return "new"
    if frequency >= 2:
        return "at_risk"
    if recency_days <= 90:
        return "needs_attention"
    return "lost"


def rfm(views: Sequence[OrderView], now: datetime) -> list[dict[str, Any]]:
    out = []
    for customer, orders in sorted(_customers(views).items()):
        last = max(o.started_at for o in orders if o.started_at is not None)
        recency = (now - last).total_seconds() / 86400
        monetary: dict[str, Decimal] = defaultdict(Decimal)
        for o in orders:
            monetary[o.currency] += o.grand_total
        out.append({"customer_id": customer, "recency_days": round(recency, 1),
                    "frequency": len(orders),
                    "monetary": ", ".join(f"{a:.2f} {c}" for c, a in sorted(monetary.items())),
                    "segment": rfm_segment(recency, len(orders))})
    return out


def rfm_segments(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    return ranked(Counter(r["segment"] for r in rows))


def _month(at: datetime) -> tuple[int, int]:
    return at.year, at.month


def cohorts(views: Sequence[OrderView]) -> list[dict[str, Any]]:
    """Customers by the month of their first order, and how many of them bought again 0, 1, 2, ...
    months later (month 0 is the cohort itself)."""
    firsts: dict[str, tuple[int, int]] = {}
    active: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for customer, orders in _customers(views).items():
        months = {_month(o.started_at) for o in orders if o.started_at is not None}
        firsts[customer] = min(months)
        active[customer] = months
    table: dict[tuple[int, int], Counter[int]] = defaultdict(Counter)
    for customer, first in firsts.items():
        for y, m in active[customer]:
            table[first][(y - first[0]) * 12 + (m - first[1])] += 1
    rows = []
    for (y, m), counts in sorted(table.items()):
        row: dict[str, Any] = {"cohort": f"{y:04d}-{m:02d}", "customers": counts[0]}
        for k in range(max(counts) + 1):
            row[f"m{k}"] = counts.get(k, 0)
        rows.append(row)
    return rows


def pairs(views: Sequence[OrderView], top: int = 20) -> list[dict[str, Any]]:
    """Frequently bought together: SKU pairs in the same order, with support (share of the
    multi-SKU orders) and confidence of b given a."""
    together: Counter[tuple[str, str]] = Counter()
    orders_with: Counter[str] = Counter()
    baskets = 0
    for v in views:
        if not v.sold:
            continue
        skus = sorted({ln.sku for ln in v.lines})
        orders_with.update(skus)
        if len(skus) >= 2:
            baskets += 1
            together.update(combinations(skus, 2))
    return [{"sku_a": a, "sku_b": b, "orders": n, "support": rate(n, baskets),
             "confidence_b_given_a": rate(n, orders_with[a])}
            for (a, b), n in sorted(together.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


def units_by_sku(views: Sequence[OrderView], start: datetime | None = None,
                 end: datetime | None = None) -> tuple[Counter[str], dict[str, Decimal]]:
    units: Counter[str] = Counter()
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    for v in views:
        at = v.started_at
        if not v.sold or at is None or (start and at < start) or (end and at >= end):
            continue
        for ln in v.lines:
            units[ln.sku] += ln.quantity
            revenue[ln.sku] += ln.unit_price * ln.quantity
    return units, revenue


def best_sellers(views: Sequence[OrderView], now: datetime, days: float) -> list[dict[str, Any]]:
    """Units and revenue per SKU over the range (`days` long), with sales velocity (units per
    day) over the range, the last 7 and the last 30 days (whole UTC days, today included)."""
    units, revenue = units_by_sku(views)
    u7, _ = units_by_sku(views, *last_days(now, 7))
    u30, _ = units_by_sku(views, *last_days(now, 30))
    return [{"sku": sku, "units": n, "revenue": f"{revenue[sku]:.2f}",
             "velocity_per_day": round(n / days, 3) if days > 0 else None,
             "velocity_7d": round(u7[sku] / 7, 3), "velocity_30d": round(u30[sku] / 30, 3)}
            for sku, n in sorted(units.items(), key=lambda kv: (-kv[1], kv[0]))]


def reorder_hints(views: Sequence[OrderView], now: datetime) -> list[dict[str, Any]]:
    """The feedback to inventory: velocity per SKU over the last 7 and 30 days."""
    u7, _ = units_by_sku(views, *last_days(now, 7))
    u30, _ = units_by_sku(views, *last_days(now, 30))
    return [{"sku": sku, "velocity_7d": round(u7[sku] / 7, 3),
             "velocity_30d": round(u30[sku] / 30, 3), "units_7d": u7[sku],
             "units_30d": u30[sku]} for sku in sorted(u30)]


def _round(x: float | None, digits: int = 2) -> float | None:
    return None if x is None else round(x, digits)


# --- the reports: every one a table, so each exports as CSV ---------------------------------------

REPORTS = ("summary", "orders_by_day", "orders_by_status", "rejection_reasons", "hold_reasons",
           "carriers", "returns_by_sku", "returns_by_reason", "refunds", "ratings",
           "rfm_segments", "cohorts", "pairs", "best_sellers")
PERSONAL_REPORTS = ("rfm_customers",)


def reports(views: Sequence[OrderView], f: Filters, now: datetime, sla_hours: float
            ) -> dict[str, list[dict[str, Any]]]:
    chosen = select(views, f)
    start = f.start or min((v.started_at for v in chosen if v.started_at), default=now)
    end = min(f.end or now, now)
    days = max((end - start).total_seconds() / 86400, 1.0)
    summary: dict[str, Any] = {"orders": len(chosen), "sold": sum(1 for v in chosen if v.sold)}
    summary |= review(chosen) | holds(chosen, now) | stock(chosen) | shipping(chosen, sla_hours)
    parcels = [pv for v in chosen for pv in v.parcels.values()]
    delivered = [(v, pv) for v in chosen for pv in v.parcels.values() if pv.delivered_at]
    on_time = sum(1 for v, pv in delivered
                  if pv.delivered_at and pv.delivered_at - pv.shipped_at
                  <= timedelta(days=promise_days(v, pv.parcel)))
    costs = [pv.parcel.cost for pv in parcels if pv.parcel.cost is not None]
    summary |= {"parcels": len(parcels), "parcels_delivered": len(delivered),
                "on_time_delivery_rate": rate(on_time, len(delivered)),
                "cost_per_parcel": f"{sum(costs, Decimal('0')) / len(costs):.2f}" if costs
                else None, "cost_samples": len(costs)}
    ret_rows, ret_reasons = returns(chosen)
    refund_rows = refunds(chosen)
    rated = ratings(chosen)
    summary |= {"return_requests": sum(ret_reasons.values()),
                "refunds": sum(r["refunds"] for r in refund_rows),
                "refunds_amount": ", ".join(f"{r['amount']} {r['currency']}" for r in
                                            _refund_totals(refund_rows)) or "0.00",
                "ratings": rated["ratings"], "average_rating": rated["average_rating"]}
    summary |= repeat_customers(chosen)
    rfm_rows = rfm(chosen, now)
    return {
        "summary": [{"metric": k, "value": v} for k, v in summary.items()],
        "orders_by_day": orders_by_day(chosen),
        "orders_by_status": _pairs_table(orders_by_status(chosen), "status", "orders"),
        "rejection_reasons": _pairs_table(reason_counts(chosen, "rejected"), "reason", "orders"),
        "hold_reasons": _pairs_table(reason_counts(chosen, "on_hold"), "reason", "orders"),
        "carriers": carriers(chosen),
        "returns_by_sku": ret_rows,
        "returns_by_reason": _pairs_table(ret_reasons, "reason", "requests"),
        "refunds": refund_rows,
        "ratings": _pairs_table(rated["distribution"], "rating", "orders"),
        "rfm_segments": _pairs_table(rfm_segments(rfm_rows), "segment", "customers"),
        "rfm_customers": rfm_rows,
        "cohorts": cohorts(chosen),
        "pairs": pairs(chosen),
        "best_sellers": best_sellers(chosen, now, days),
    }


def _refund_totals(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        totals[r["currency"]] += Decimal(r["amount"])
    return [{"currency": c, "amount": f"{a:.2f}"} for c, a in sorted(totals.items())]


def _pairs_table(d: dict[str, int], key: str, value: str) -> list[dict[str, Any]]:
    return [{key: k, value: n} for k, n in d.items()]


def stuck(status: str | None, status_at: datetime, now: datetime, max_age: timedelta) -> bool:
    """An order stuck: not in a final state and unchanged for longer than `max_age`."""
    return status not in FINAL_STATUSES and now - status_at > max_age
