"""tools/setup_file.py's own logic: the file's shape, who owns which section, and the order and
retries of an import. The owners' validation and the real round trip are in
tests/integration/test_setup_file.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tools import setup_file
from tools.setup_file import SetupError


def test_every_section_has_one_owner() -> None:
    sections = [s for owned in setup_file.OWNERS.values() for s in owned]
    assert len(sections) == len(set(sections))
    # what is referred to is applied first: warehouses (inventory) before zones (logistics)
    order = list(setup_file.OWNERS)
    assert order.index("inventory") < order.index("logistics")


def test_shape_problems_are_all_reported(tmp_path: Path) -> None:
    f = tmp_path / "shop.yaml"
    f.write_text("version: 2\nwarehouse: {}\nboxes: [1, 2]\n")
    with pytest.raises(SetupError) as caught:
        setup_file.read(f)
    assert [p.split(":")[0] for p in caught.value.problems] == ["version", "warehouse", "boxes"]
    f.write_text("version: 1\nboxes: {BOX-S: {a: [1\n")
    with pytest.raises(SetupError, match="not valid YAML"):
        setup_file.read(f)
    with pytest.raises(SetupError, match="cannot read"):
        setup_file.read(tmp_path / "missing.yaml")


def test_the_shipped_files_have_the_right_shape() -> None:
    # the default names every section (tests/handlers/test_setup_default.py checks its values)
    default = setup_file.read(setup_file.DEFAULT_FILE)
    assert set(default) == {"version", *setup_file.SECTIONS}
    # the demo's two sellers keep their books in two currencies
    demo = setup_file.read(setup_file.DEMO_FILE)
    assert {s["base_currency"] for s in demo["sellers"].values()} == {"USD", "CNY"}


class Owners:
    """Answers like the owners' /setup routes would; logistics waits once for a copy."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.refuse_logistics = 1

    async def __call__(self, service: str, method: str, path: str, body: Any) -> Any:
        self.calls.append((service, method, path))
        if service == "logistics" and path == "/setup" and self.refuse_logistics:
            self.refuse_logistics -= 1
            raise setup_file.problems_of(service, 409, "warehouse WH-X is not known yet")
        if service == "fulfillment" and body and "bad" in body.get("boxes", {}):
            raise setup_file.problems_of(service, 422, {"problems": [
                {"at": "boxes.bad.tare_g", "error": "Input should be a valid integer"}]})
        return {"service": service, "dry_run": "dry_run" in path, "unchanged": 0,
                "changes": [{"section": s, "key": k, "action": "created", "fields": {}}
                            for s, entries in (body or {}).items() for k in entries]}


def test_apply_plans_first_then_goes_owner_by_owner_waiting_for_copies() -> None:
    owners = Owners()
    doc = {"version": 1, "zones": {"WH-X": {"US": "1"}}, "warehouses": {"WH-X": {}}}
    applied = asyncio.run(setup_file.apply(owners, doc, copy_wait=5))
    assert [c[0] for c in owners.calls if "dry_run" in c[2]] == ["inventory", "logistics"]
    assert [c[0] for c in owners.calls if c[2] == "/setup"] == ["inventory", "logistics",
                                                                "logistics"]
    assert [p["service"] for p in applied] == ["inventory", "logistics"]


def test_a_refused_plan_changes_nothing_and_names_every_problem() -> None:
    owners = Owners()
    doc = {"version": 1, "boxes": {"bad": {}}, "warehouses": {"WH-X": {}}}
    with pytest.raises(SetupError) as caught:
        asyncio.run(setup_file.apply(owners, doc))
    assert caught.value.problems == ["boxes.bad.tare_g: Input should be a valid integer"
                                     " (fulfillment)"]
    assert all("dry_run" in c[2] for c in owners.calls)
