"""When a quoted parcel would leave the warehouse (domain.ships_on): the warehouse's local date,
its cut-off and its working days; and its delivery window (domain.estimated_delivery)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.logistics import domain

WEEK = ("mon", "tue", "wed", "thu", "fri")


@pytest.mark.parametrize(("now", "tz", "expected"), [
    # Wednesday 2026-03-04 09:00 in Los Angeles (17:00 UTC): before the cut-off -> today
    (datetime(2026, 3, 4, 17, 0, tzinfo=UTC), "America/Los_Angeles", date(2026, 3, 4)),
    # 15:00 sharp local is the cut-off itself: the next working day
    (datetime(2026, 3, 4, 23, 0, tzinfo=UTC), "America/Los_Angeles", date(2026, 3, 5)),
    # 02:00 UTC Thursday is still Wednesday 18:00 in Los Angeles: after the cut-off -> Thursday
    (datetime(2026, 3, 5, 2, 0, tzinfo=UTC), "America/Los_Angeles", date(2026, 3, 5)),
    # ... and already Thursday 10:00 in Shenzhen: before its cut-off -> Thursday
    (datetime(2026, 3, 5, 2, 0, tzinfo=UTC), "Asia/Shanghai", date(2026, 3, 5)),
    # Friday after the cut-off in Frankfurt -> Monday
    (datetime(2026, 3, 6, 16, 0, tzinfo=UTC), "Europe/Berlin", date(2026, 3, 9)),
    # Saturday morning -> Monday
    (datetime(2026, 3, 7, 8, 0, tzinfo=UTC), "Europe/Berlin", date(2026, 3, 9)),
])
def test_ships_today_before_the_cutoff_else_the_next_working_day(
        now: datetime, tz: str, expected: date) -> None:
    assert domain.ships_on(now, tz, "15:00", WEEK) == expected


def test_working_days_and_cutoff_are_the_warehouses() -> None:
    saturday = datetime(2026, 3, 7, 8, 0, tzinfo=UTC)
    assert domain.ships_on(saturday, "UTC", "15:00", (*WEEK, "sat")) == date(2026, 3, 7)
    assert domain.ships_on(saturday, "UTC", "07:30", (*WEEK, "sat")) == date(2026, 3, 9)
    assert domain.ships_on(saturday, "UTC", "15:00", ("wed",)) == date(2026, 3, 11)
    assert domain.ships_on(saturday, "UTC", "15:00", ()) is None


def test_estimated_delivery_is_the_ship_day_plus_transit_days() -> None:
    assert domain.estimated_delivery(date(2026, 3, 30), 2, 5) == (date(2026, 4, 1),
                                                                  date(2026, 4, 4))
