"""Logistics' setup entries as models (services/logistics/kinds.py), without a database: what a
YAML file may say and how it is normalised."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.logistics.kinds import CarrierServiceEntry, RateCard, ZoneChart

SERVICE = {"carrier": "USPS", "name": "Ground Advantage", "origins": ["WH-LA"],
           "destinations": ["US", "CA", "US"], "refused": ["liquid", "battery"],
           "max_weight_g": 31500, "max_side_mm": 1000, "transit_min": 2, "transit_max": 5,
           "first_500g": 5.5, "per_500g": "1.20", "fuel_pct": 0, "volumetric_divisor": 5000,
           "tracking_format": "num:9400:18", "remote_surcharge": 0, "stall_days": 5,
           "currency": "USD", "active": True}


def test_sets_are_sorted_and_numbers_read_as_written() -> None:
    entry = CarrierServiceEntry.model_validate(SERVICE).model_dump(mode="json")
    assert entry["destinations"] == ["CA", "US"] and entry["refused"] == ["battery", "liquid"]
    assert entry["first_500g"] == "5.5"


@pytest.mark.parametrize("fmt", ["num:9400:18", "s10:CP:US", "num:1Z:16", "num:JD:18",
                                 "s10:LX:CN", "num:YT:16", "num:00340:15", "s10:LX:DE"])
def test_every_seeded_tracking_format_is_valid(fmt: str) -> None:
    CarrierServiceEntry.model_validate({**SERVICE, "tracking_format": fmt})


@pytest.mark.parametrize("fmt", ["num:1Z", "s10:C:US", "s10:CP:USA", "abc:1Z:16", "num:1Z:0",
                                 "num:1z:16"])
def test_a_tracking_format_the_label_code_cannot_parse_is_refused(fmt: str) -> None:
    with pytest.raises(ValidationError, match="tracking format"):
        CarrierServiceEntry.model_validate({**SERVICE, "tracking_format": fmt})


def test_zones_written_as_numbers_are_zone_names() -> None:
    assert ZoneChart.model_validate({"US": 2, "MX": "D"}).root == {"US": "2", "MX": "D"}
    card = RateCard.model_validate({"rates": {1: {"first_500g": 5, "per_500g": 1,
                                                  "transit_min": 1, "transit_max": 2}}})
    assert list(card.rates) == ["1"] and card.zones is None
    with pytest.raises(ValidationError):
        ZoneChart.model_validate({})
    with pytest.raises(ValidationError, match="transit_min"):
        RateCard.model_validate({"rates": {"1": {"first_500g": 5, "per_500g": 1,
                                                 "transit_min": 3, "transit_max": 2}}})
