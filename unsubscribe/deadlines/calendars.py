"""Working-day calendars.

Mainland China's working days move with the State Council's holiday notice each year:
holidays are added and some Saturdays or Sundays become working days (调休). Those come
from `chinese-calendar`, which ships each year's notice once it is published, and
raises NotImplementedError for a year it does not have yet. The United States (and
any other country added to WorkCalendar) come from `holidays`: weekends and federal
holidays, observed days included.

A year the library does not cover is never guessed silently: staff enter that year's
holidays and adjusted working days (CalendarDay rows, which also override any single day of
a covered year) and then mark the year entered (a CalendarYear row). A due time computed over
a year that is neither covered nor marked is provisional (the entered days, else Monday to
Friday) and warned about (tenants.readiness, the request page): one day entered does not make
the rest of its year known.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

import chinese_calendar
import holidays


@functools.cache
def _us_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("US", years=year))


def library_covers(calendar: str, year: int) -> bool:
    """Whether the library has this calendar's days for `year`. A blank calendar (Monday
    to Friday) covers every year."""
    if calendar == "CN":
        try:
            chinese_calendar.is_workday(date(year, 6, 1))
        except NotImplementedError:
            return False
        return True
    if calendar == "US":
        us = holidays.country_holidays("US")
        return bool(us.start_year <= year <= us.end_year)
    return calendar == ""


def _library_working(calendar: str, day: date) -> bool:
    if calendar == "CN":
        return bool(chinese_calendar.is_workday(day))  # raises NotImplementedError past its data
    if calendar == "US":
        return day.weekday() < 5 and day not in _us_holidays(day.year)
    return day.weekday() < 5


@dataclass(frozen=True)
class DayBook:
    """One calendar as a tenant sees it: the library's days, with staff's days on top."""

    calendar: str  # a WorkCalendar value, or "" for Monday to Friday
    overrides: Mapping[date, bool] = field(default_factory=dict)
    staff_years: frozenset[int] = frozenset()  # years staff marked entered (CalendarYear)

    def known(self, year: int) -> bool:
        """Whether this year's days are known (the library's, or entered by staff)."""
        return library_covers(self.calendar, year) or year in self.staff_years

    def is_working(self, day: date) -> tuple[bool, bool]:
        """(working, provisional): provisional when neither the library nor staff know the year;
        a day staff entered counts as they said, in a year they have not finished too."""
        known = self.known(day.year)
        if day in self.overrides:
            return self.overrides[day], not known
        if library_covers(self.calendar, day.year):
            return _library_working(self.calendar, day), False
        return day.weekday() < 5, not known


def add_working_days(*, start: date, days: int, book: DayBook) -> tuple[date, bool]:
    """The `days`-th working day after `start` (the filing day itself never counts), and
    whether any day counted on lay in a year with no data. Zero days: the filing day."""
    day, provisional, counted = start, False, 0
    while counted < days:
        day += timedelta(days=1)
        working, guessed = book.is_working(day)
        provisional = provisional or guessed
        if working:
            counted += 1
    return day, provisional
