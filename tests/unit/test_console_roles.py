"""The console's role rules: who may see and do what (services/console/roles.py), and that every
action the pages ask about is a known one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.console.roles import PERMISSIONS, ROLES, can

CONSOLE = Path(__file__).resolve().parents[2] / "services" / "console"


@pytest.mark.parametrize(("role", "action", "allowed"), [
    # the issue's examples
    ("warehouse", "returns.decide", False),   # may not approve a refund
    ("warehouse", "returns.grade", True),
    ("warehouse", "returns.receive", True),
    ("warehouse", "warehouse.work", True),
    ("manager", "warehouse.work", False),
    ("manager", "review.decide", True),
    ("manager", "returns.decide", True),
    ("manager", "orders.cancel", True),
    ("manager", "backorders.decide", True),
    ("manager", "users.manage", False),
    ("manager", "rules.edit", False),
    ("support", "orders.view", True),
    ("support", "review.decide", False),
    ("support", "orders.cancel", False),
    ("support", "review.note", True),
    ("viewer", "orders.view", True),
    ("viewer", "dashboard.view", True),
    ("admin", "users.manage", True),
    ("admin", "rules.edit", True),
    ("admin", "returns.decide", True),
    # quarantined outbox rows: everyone who reads Exceptions sees them, a manager releases
    ("manager", "exceptions.release", True),
    ("support", "exceptions.release", False),
    ("warehouse", "exceptions.release", False),
    ("support", "exceptions.view", True),
])
def test_role_rules(role: str, action: str, allowed: bool) -> None:
    assert can(role, action) is allowed


@pytest.mark.parametrize("action", [a for a in PERMISSIONS if not a.endswith(".view")])
def test_a_viewer_may_do_nothing(action: str) -> None:
    assert not can("viewer", action)


@pytest.mark.parametrize("action", sorted(PERMISSIONS))
def test_admin_may_do_everything(action: str) -> None:
    assert can("admin", action)


def test_unknown_roles_and_actions_are_refused() -> None:
    assert not can("intern", "orders.view")
    assert not can("manager", "orders.delete")
    assert not can("", "orders.view")


def test_every_action_the_console_checks_is_a_known_one() -> None:
    # Given every viewer("…")/actor("…") in the routes and every can("…") in the templates
    code = (CONSOLE / "pages.py").read_text() + (CONSOLE / "app.py").read_text()
    used = set(re.findall(r"(?:viewer|actor)\(\"([a-z_.]+)\"\)", code))
    for template in (CONSOLE / "templates").glob("*.html"):
        used |= set(re.findall(r"can\(\"([a-z_.]+)\"\)", template.read_text()))
        used |= set(re.findall(r"\(\"/[a-z]*\", \"([a-z_.]+)\", \"nav\.", template.read_text()))
    # Then each is in the permission table (a typo would hide a button from all but admin)
    assert used, "found no permission checks"
    assert used <= set(PERMISSIONS), sorted(used - set(PERMISSIONS))
    assert {"review.decide", "returns.decide", "warehouse.work", "users.manage"} <= used


def test_roles_are_the_five_of_the_issue() -> None:
    assert ROLES == ("admin", "manager", "support", "warehouse", "viewer")
