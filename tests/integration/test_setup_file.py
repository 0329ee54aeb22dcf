"""`shopkeeper setup export|import|audit` on the real stack (docs/setup.md): the whole shop as one
YAML file, an import that plans before it changes anything and names every problem, an apply
across owners that waits for logistics' copy of a new warehouse, and the audit of it all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ref
from tools import setup_file

from .helpers import admin_client, http_get
from .test_cli import shopkeeper


async def test_export_edit_plan_apply_and_audit_a_shop(tmp_path: Path) -> None:
    # Given the running shop exported as one file
    shop = tmp_path / "shop.yaml"
    code, out = await shopkeeper("setup", "export", "-o", str(shop))
    assert code == 0, out
    doc = yaml.safe_load(shop.read_text(encoding="utf-8"))
    assert set(doc) == {"version", *setup_file.SECTIONS}
    assert {"WH-LA", "WH-SZ", "WH-FRA"} <= set(doc["warehouses"])
    assert {"BOX-S", "BOX-XL"} <= set(doc["boxes"]) and "USPS-GA" in doc["carrier_services"]
    # Imported as it is, it changes nothing
    code, out = await shopkeeper("--json", "setup", "import", str(shop))
    assert code == 0, out
    assert all(p["changes"] == [] for p in json.loads(out)["plans"]), out

    # When an operator adds a warehouse (inventory), its zone chart (logistics) and a box
    # (fulfillment) in the file
    wh, box = ref("WH").upper(), ref("BOX").upper()
    operator = ref("lea")  # this run's rows only, on a stack earlier runs used too
    edited: dict[str, Any] = {"version": 1,
              "warehouses": {wh: {**doc["warehouses"]["WH-FRA"], "name": "Lyon",
                                  "country": "FR", "timezone": "Europe/Paris"}},
              "zones": {wh: {"FR": "D", "DE": "1", "US": "3"}},
              "boxes": {box: {"inner_mm": [300, 200, 50], "tare_g": 90, "max_weight_g": 4000,
                              "active": True}}}
    shop.write_text(setup_file.dump(edited), encoding="utf-8")
    # Then the plan lists what would change, and nothing changes yet
    code, out = await shopkeeper("--json", "setup", "import", str(shop))
    assert code == 0, out
    plans = {p["service"]: p for p in json.loads(out)["plans"]}
    assert [(c["key"], c["action"]) for c in plans["inventory"]["changes"]] == [(wh, "created")]
    assert [(c["key"], c["action"]) for c in plans["fulfillment"]["changes"]] == [
        (box, "created")]
    # (logistics cannot know the warehouse yet: it plans the chart, and checks it when applied)
    assert [(c["key"], c["action"]) for c in plans["logistics"]["changes"]] == [(wh, "created")]
    assert (await http_get("fulfillment", f"/setup/boxes/{box}", auth=True)).status_code == 404

    # When it is applied: inventory first, then logistics once its copy of the warehouse came
    code, out = await shopkeeper("--json", "setup", "import", str(shop), "--apply",
                                 env={"SHOPKEEPER_OPERATOR": operator})
    assert code == 0, out
    applied = {p["service"]: p for p in json.loads(out)["plans"]}
    assert [c["key"] for c in applied["logistics"]["changes"]] == [wh]
    zones = (await http_get("logistics", f"/setup/zones/{wh}", auth=True)).json()
    assert zones == {"DE": "1", "FR": "D", "US": "3"}
    assert (await http_get("fulfillment", f"/setup/boxes/{box}", auth=True)).json()[
        "max_weight_g"] == 4000
    # Applied again, it changes nothing
    code, out = await shopkeeper("--json", "setup", "import", str(shop), "--apply")
    assert code == 0 and all(p["changes"] == [] for p in json.loads(out)["plans"]), out
    # And the audit says who did what, across owners
    code, out = await shopkeeper("--json", "setup", "audit", "--limit", "200")
    assert code == 0, out
    mine = {(r["service"], r["section"], r["key"]) for r in json.loads(out)
            if r["changed_by"] == operator}
    assert mine == {("inventory", "warehouses", wh), ("logistics", "zones", wh),
                    ("fulfillment", "boxes", box)}
    # (the new box retires, so other tests' parcels keep the boxes they expect)
    async with admin_client("fulfillment") as fulfillment:
        r = await fulfillment.put(f"/setup/boxes/{box}",
                                  json={**edited["boxes"][box], "active": False})
        assert r.status_code == 200, r.text


async def test_a_file_with_problems_changes_nothing_and_names_them_all(tmp_path: Path) -> None:
    box = ref("BOX").upper()
    bad = tmp_path / "bad.yaml"
    bad.write_text(setup_file.dump({
        "version": 1,
        "boxes": {box: {"inner_mm": [300, 200], "tare_g": 90, "max_weight_g": 4000,
                        "active": True}},
        "review_policies": {"shop-x": {"high_value_threshold": "abc"}}}), encoding="utf-8")
    code, out = await shopkeeper("setup", "import", str(bad), "--apply")
    assert code == 1
    assert "nothing was changed" in out
    assert f"boxes.{box}.inner_mm" in out and "review_policies.shop-x" in out
    assert (await http_get("fulfillment", f"/setup/boxes/{box}", auth=True)).status_code == 404
    # A file that is not a setup file at all
    bad.write_text("version: 1\nwarehouse: {}\n", encoding="utf-8")
    code, out = await shopkeeper("setup", "import", str(bad))
    assert code == 1 and "warehouse: not a setup section" in out
