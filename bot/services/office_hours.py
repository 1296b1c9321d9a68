"""Office hours, Swedish business days and the deadlines promised to members."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays


@lru_cache(maxsize=32)
def _closed_days(year: int) -> frozenset[date]:
    # Public holidays and the de facto ones a municipality is closed on (julafton,
    # midsommarafton, nyårsafton), from the maintained holidays library.
    found = holidays.country_holidays("SE", years=year, categories=("public", "de_facto"))
    return frozenset(found)


@dataclass(frozen=True)
class OfficeHours:
    """When the city answers: weekdays between ``opens`` and ``closes``, holidays excepted."""

    zone: ZoneInfo
    opens: time = field(default=time(8, 0))
    closes: time = field(default=time(17, 0))

    def is_business_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in _closed_days(day.year)

    def is_open(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        return self.is_business_day(local.date()) and self.opens <= local.time() < self.closes

    def next_business_day(self, day: date) -> date:
        day += timedelta(days=1)
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day

    def next_opening(self, moment: datetime) -> datetime:
        """When the office is next open (``moment`` itself when it is open)."""
        if self.is_open(moment):
            return moment
        local = moment.astimezone(self.zone)
        day = local.date()
        if not (self.is_business_day(day) and local.time() < self.opens):
            day = self.next_business_day(day)
        return datetime.combine(day, self.opens, tzinfo=self.zone).astimezone(moment.tzinfo)

    def deadline(self, received: datetime, business_days: int) -> datetime:
        """Closing time of the ``business_days``-th business day after the day work starts.

        A question that arrives out of hours (an evening, a weekend, a holiday) is counted from
        the next opening, so a Friday 17:30 question gets the same date as a Monday morning one.
        """
        start = self.next_opening(received).astimezone(self.zone).date()
        day = start
        for _ in range(business_days):
            day = self.next_business_day(day)
        return datetime.combine(day, self.closes, tzinfo=self.zone).astimezone(received.tzinfo)

    def business_hours_between(self, start: datetime, end: datetime) -> float:
        """Office hours elapsed between two moments (for response times and reminders)."""
        if end <= start:
            return 0.0
        total = 0.0
        local_start = start.astimezone(self.zone)
        local_end = end.astimezone(self.zone)
        day = local_start.date()
        while day <= local_end.date():
            if self.is_business_day(day):
                opening = datetime.combine(day, self.opens, tzinfo=self.zone)
                closing = datetime.combine(day, self.closes, tzinfo=self.zone)
                begin = max(opening, local_start)
                finish = min(closing, local_end)
                if finish > begin:
                    total += (finish - begin).total_seconds() / 3600
            day += timedelta(days=1)
        return total
