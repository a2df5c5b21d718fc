"""Billing-period and quota-window arithmetic, in UTC.

The periods of a subscription are anchored at its start, in UTC, and keep
their anchor. Period ``k`` is ``[anchor + k cycles, anchor + (k + 1) cycles)``, and
``anchor + n cycles`` is always computed from the anchor itself, never by adding one
cycle to the previous period: a monthly subscription started Jan 31 10:00 renews
Feb 28 10:00 (Feb 29 in a leap year) and then Mar 31 10:00, not Mar 28.

- A month is a calendar month; when the anchor's day does not exist in the target
  month the period starts on that month's last day, at the anchor's time of day.
- A year is twelve such months. Decision: a yearly subscription anchored on Feb 29
  renews on Feb 28 in common years and on Feb 29 again in leap years.
- A week is exactly 7 days of 24 hours (UTC has no daylight saving time).
- Every datetime taken or returned is timezone-aware. Naive datetimes raise
  ``ValueError``; an aware datetime in another zone is first converted to UTC, so
  the arithmetic is always done on the UTC calendar, and results are in UTC.
- Indexes may be negative (periods before the anchor): the functions are total and
  consistent either way; whether a time before the start is meaningful is the
  caller's business.

Quota windows for the gateway: calendar minute / hour / day / month in UTC,
or the subscription's current billing period ("period").
"""

import calendar
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class Cycle(StrEnum):
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class WindowUnit(StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"
    PERIOD = "period"


_MONTHS_PER_CYCLE = {Cycle.MONTH: 1, Cycle.YEAR: 12}
_WEEK = timedelta(weeks=1)


def as_utc(value: datetime, name: str = "datetime") -> datetime:
    """``value`` converted to UTC; a naive datetime raises ValueError."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got {value!r}")
    return value.astimezone(UTC)


def add_cycles(anchor: datetime, cycle: Cycle | str, n: int) -> datetime:
    """``anchor`` + ``n`` cycles, clamped to the end of shorter months."""
    anchor = as_utc(anchor, "anchor")
    cycle = Cycle(cycle)
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, not {type(n).__name__}")
    if cycle is Cycle.WEEK:
        return anchor + n * _WEEK
    months = anchor.month - 1 + n * _MONTHS_PER_CYCLE[cycle]
    year, month = anchor.year + months // 12, months % 12 + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def period_bounds(
    anchor: datetime, cycle: Cycle | str, index: int
) -> tuple[datetime, datetime]:
    """Period ``index`` of a subscription anchored at ``anchor``: (start, end),
    start inclusive, end exclusive."""
    return add_cycles(anchor, cycle, index), add_cycles(anchor, cycle, index + 1)


def period_containing(
    anchor: datetime, cycle: Cycle | str, at: datetime
) -> tuple[int, datetime, datetime]:
    """(index, start, end) of the period that contains ``at``, in constant time."""
    anchor = as_utc(anchor, "anchor")
    at = as_utc(at, "at")
    cycle = Cycle(cycle)
    if cycle is Cycle.WEEK:
        index = (at - anchor) // _WEEK
    else:
        # The calendar-month distance is off by at most one period (the anchor's
        # day and time of day may not be reached yet), which the loops fix.
        months = (at.year - anchor.year) * 12 + (at.month - anchor.month)
        index = months // _MONTHS_PER_CYCLE[cycle]
        while add_cycles(anchor, cycle, index) > at:
            index -= 1
        while add_cycles(anchor, cycle, index + 1) <= at:
            index += 1
    start, end = period_bounds(anchor, cycle, index)
    return index, start, end


def window_bounds(
    unit: WindowUnit | str,
    at: datetime,
    *,
    anchor: datetime | None = None,
    cycle: Cycle | str | None = None,
) -> tuple[datetime, datetime]:
    """The quota window containing ``at``: (start, end), end exclusive.

    minute / hour / day / month are calendar windows in UTC; "period" is the
    subscription's billing period and needs ``anchor`` and ``cycle`` (which the
    other units ignore).
    """
    unit = WindowUnit(unit)
    at = as_utc(at, "at")
    if unit is WindowUnit.PERIOD:
        if anchor is None or cycle is None:
            raise ValueError("A 'period' quota window needs the anchor and cycle.")
        _index, start, end = period_containing(anchor, cycle, at)
        return start, end
    if unit is WindowUnit.MONTH:
        start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = add_cycles(start, Cycle.MONTH, 1)
        return start, end
    if unit is WindowUnit.DAY:
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    if unit is WindowUnit.HOUR:
        start = at.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    start = at.replace(second=0, microsecond=0)
    return start, start + timedelta(minutes=1)
