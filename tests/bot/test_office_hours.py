"""Deadlines over weekends, evenings and Swedish holidays, on a fixed clock."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.services.office_hours import OfficeHours

ZONE = ZoneInfo("Europe/Stockholm")
HOURS = OfficeHours(zone=ZONE)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


@pytest.mark.parametrize(
    ("received", "due"),
    [
        ("2026-11-25 09:00", "2026-11-27 17:00"),  # Wednesday morning → Friday
        ("2026-11-27 16:55", "2026-12-01 17:00"),  # Friday before closing → Tuesday
        ("2026-11-27 17:30", "2026-12-02 17:00"),  # Friday evening: counted from Monday
        ("2026-11-28 12:00", "2026-12-02 17:00"),  # Saturday
        ("2026-11-30 07:00", "2026-12-02 17:00"),  # Monday before opening
        # Thursday 2026-04-02 16:55: Good Friday and Easter Monday are holidays.
        ("2026-04-02 16:55", "2026-04-08 17:00"),
        # Friday 2026-06-05 16:55: next week is ordinary (6 June is a Saturday).
        ("2026-06-05 16:55", "2026-06-09 17:00"),
        # Wednesday 23 December: julafton, juldagen, annandag and a weekend follow.
        ("2026-12-23 16:55", "2026-12-29 17:00"),
        # Friday 28 April 2028 16:55: Monday 1 May is a public holiday.
        ("2028-04-28 16:55", "2028-05-03 17:00"),
        # Thursday 18 June: midsommarafton (Friday) is closed.
        ("2026-06-18 10:00", "2026-06-23 17:00"),
    ],
)
def test_deadline(received: str, due: str) -> None:
    assert HOURS.deadline(at(received), 2) == at(due)


def test_out_of_hours_and_the_next_opening() -> None:
    assert HOURS.is_open(at("2026-11-27 16:55"))
    assert not HOURS.is_open(at("2026-11-27 17:00"))
    assert HOURS.next_opening(at("2026-11-27 17:30")) == at("2026-11-30 08:00")
    assert HOURS.next_opening(at("2026-12-24 10:00")) == at("2026-12-28 08:00")


def test_office_hours_between_moments() -> None:
    assert HOURS.business_hours_between(at("2026-11-27 16:00"), at("2026-11-30 09:00")) == 2.0
    assert HOURS.business_hours_between(at("2026-11-28 10:00"), at("2026-11-29 10:00")) == 0.0
