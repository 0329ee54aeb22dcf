"""Who may do what in the console: the role rules, pure (no I/O), so they are unit-tested alone.

Every page and every button asks `can(role, action)`: the template hides what the role may not
do, and the server answers 403 to the same action. `admin` may do everything.
"""

from __future__ import annotations

from typing import Literal

Role = Literal["admin", "manager", "support", "warehouse", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "manager", "support", "warehouse", "viewer")

EVERYONE: frozenset[Role] = frozenset(ROLES)

# action -> the roles (besides admin) allowed to do it
PERMISSIONS: dict[str, frozenset[Role]] = {
    # reading
    "orders.view": EVERYONE,
    "review.view": frozenset({"manager", "support", "viewer"}),
    "warehouse.view": frozenset({"manager", "warehouse", "viewer"}),
    "returns.view": EVERYONE,
    "exceptions.view": frozenset({"manager", "support", "viewer"}),
    "stock.view": EVERYONE,
    "backorders.view": frozenset({"manager", "support", "viewer"}),
    "rules.view": frozenset({"manager", "viewer"}),
    "dashboard.view": EVERYONE,
    "audit.view": frozenset({"manager"}),
    "cases.view": frozenset({"manager", "support", "viewer"}),
    # acting
    "orders.cancel": frozenset({"manager"}),
    "review.decide": frozenset({"manager"}),
    "review.note": frozenset({"manager", "support"}),
    "warehouse.work": frozenset({"warehouse"}),
    "returns.receive": frozenset({"warehouse"}),
    "returns.grade": frozenset({"warehouse"}),
    "returns.decide": frozenset({"manager"}),
    "returns.open": frozenset({"manager", "support"}),  # approve refunds above the automatic threshold
    "exceptions.replay": frozenset({"manager"}),
    "exceptions.release": frozenset({"manager"}),  # a quarantined outbox row back in line
    "stock.adjust": frozenset({"manager", "warehouse"}),
    "backorders.decide": frozenset({"manager"}),
    # follow-up cases from unhappy feedback: assign, comment, close, reopen
    "cases.work": frozenset({"manager", "support"}),
    "rules.edit": frozenset(),
    "users.manage": frozenset(),
}


def can(role: str, action: str) -> bool:
    """True when `role` may do `action`. An unknown action is refused to all but admin, so a
    typo in a template hides a button instead of showing it."""
    if role == "admin":
        return True
    return role in PERMISSIONS.get(action, frozenset())


def is_role(value: str) -> bool:
    return value in ROLES
