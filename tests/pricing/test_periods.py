"""Billing periods anchored at the subscription's start, and quota windows."""

import calendar
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing.periods import (
    Cycle,
    add_cycles,
    period_bounds,
    period_containing,
    window_bounds,
)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_a_monthly_subscription_from_jan_31_keeps_its_anchor():
    anchor = utc(2027, 1, 31, 10, 0)
    assert period_bounds(anchor, Cycle.MONTH, 0) == (
        utc(2027, 1, 31, 10),
        utc(2027, 2, 28, 10),
    )
    assert period_bounds(anchor, Cycle.MONTH, 1) == (
        utc(2027, 2, 28, 10),
        utc(2027, 3, 31, 10),
    )
    assert period_bounds(anchor, Cycle.MONTH, 2) == (
        utc(2027, 3, 31, 10),
        utc(2027, 4, 30, 10),
    )
    assert period_bounds(anchor, Cycle.MONTH, 3) == (
        utc(2027, 4, 30, 10),
        utc(2027, 5, 31, 10),
    )


def test_it_renews_on_feb_29_in_a_leap_year():
    anchor = utc(2028, 1, 31, 10, 0)
    assert add_cycles(anchor, "month", 1) == utc(2028, 2, 29, 10)
    assert add_cycles(anchor, "month", 2) == utc(2028, 3, 31, 10)


def test_periods_are_computed_from_the_anchor_not_chained():
    anchor = utc(2027, 1, 31, 10)
    chained = add_cycles(add_cycles(anchor, Cycle.MONTH, 1), Cycle.MONTH, 1)
    assert chained == utc(2027, 3, 28, 10)  # what chaining would wrongly give
    assert add_cycles(anchor, Cycle.MONTH, 2) == utc(2027, 3, 31, 10)
    # 100 years of months later the anchor day still holds
    assert add_cycles(anchor, Cycle.MONTH, 1200) == utc(2127, 1, 31, 10)
    assert add_cycles(anchor, Cycle.MONTH, 1201) == utc(2127, 2, 28, 10)


def test_a_yearly_feb_29_anchor_renews_feb_28_then_feb_29_in_leap_years():
    anchor = utc(2028, 2, 29, 8, 30)
    assert [add_cycles(anchor, Cycle.YEAR, n) for n in range(5)] == [
        utc(2028, 2, 29, 8, 30),
        utc(2029, 2, 28, 8, 30),
        utc(2030, 2, 28, 8, 30),
        utc(2031, 2, 28, 8, 30),
        utc(2032, 2, 29, 8, 30),
    ]
    assert add_cycles(anchor, Cycle.YEAR, 72) == utc(2100, 2, 28, 8, 30)  # not leap


def test_weekly_periods_are_seven_days():
    anchor = utc(2027, 3, 1, 9, 15, 30)
    assert period_bounds(anchor, Cycle.WEEK, 0) == (
        utc(2027, 3, 1, 9, 15, 30),
        utc(2027, 3, 8, 9, 15, 30),
    )
    assert period_bounds(anchor, Cycle.WEEK, 2) == (
        utc(2027, 3, 15, 9, 15, 30),
        utc(2027, 3, 22, 9, 15, 30),
    )
    assert add_cycles(anchor, "week", 52) == utc(2028, 2, 28, 9, 15, 30)


def test_negative_indexes_are_the_periods_before_the_anchor():
    anchor = utc(2027, 3, 31, 10)
    assert period_bounds(anchor, Cycle.MONTH, -1) == (
        utc(2027, 2, 28, 10),
        utc(2027, 3, 31, 10),
    )


def test_period_containing_at_the_boundaries():
    anchor = utc(2027, 1, 31, 10)
    feb_28 = utc(2027, 2, 28, 10)
    one_microsecond = timedelta(microseconds=1)
    assert period_containing(anchor, Cycle.MONTH, anchor) == (0, anchor, feb_28)
    assert period_containing(anchor, Cycle.MONTH, feb_28 - one_microsecond) == (
        0,
        anchor,
        feb_28,
    )
    assert period_containing(anchor, Cycle.MONTH, feb_28) == (
        1,
        feb_28,
        utc(2027, 3, 31, 10),
    )
    # Mar 1 is in period 1 although its calendar month is two after the anchor's
    assert period_containing(anchor, Cycle.MONTH, utc(2027, 3, 1))[0] == 1
    assert period_containing(anchor, Cycle.MONTH, utc(2027, 3, 31, 9, 59))[0] == 1
    assert period_containing(anchor, Cycle.MONTH, utc(2027, 3, 31, 10))[0] == 2
    assert period_containing(anchor, Cycle.MONTH, utc(2027, 1, 31, 9))[0] == -1


def test_period_containing_for_years_and_weeks():
    anchor = utc(2025, 3, 15, 12)
    assert period_containing(anchor, Cycle.YEAR, utc(2027, 3, 1)) == (
        1,
        utc(2026, 3, 15, 12),
        utc(2027, 3, 15, 12),
    )
    assert period_containing(anchor, Cycle.YEAR, utc(2027, 3, 15, 12))[0] == 2
    weekly = utc(2027, 3, 1, 9)
    # 5,200 weeks (about a century) later: computed, not looped
    at = weekly + timedelta(weeks=5200, days=6, hours=23)
    index, start, end = period_containing(weekly, Cycle.WEEK, at)
    assert index == 5200
    assert start == weekly + timedelta(weeks=5200)
    assert end == weekly + timedelta(weeks=5201)


def test_aware_datetimes_in_other_zones_are_converted_to_utc_first():
    # 1 Feb 01:00 in UTC+2 is 31 Jan 23:00 UTC: the anchor day is the 31st
    anchor = datetime(2027, 2, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    start, end = period_bounds(anchor, Cycle.MONTH, 1)
    assert start == utc(2027, 2, 28, 23)
    assert end == utc(2027, 3, 31, 23)
    assert start.tzinfo is UTC
    assert end.tzinfo is UTC


@pytest.mark.parametrize(
    "call",
    [
        lambda: add_cycles(datetime(2027, 1, 1), Cycle.MONTH, 1),
        lambda: period_bounds(datetime(2027, 1, 1), Cycle.MONTH, 0),
        lambda: period_containing(utc(2027, 1, 1), Cycle.MONTH, datetime(2027, 2, 1)),
        lambda: window_bounds("day", datetime(2027, 1, 1)),
        lambda: window_bounds(
            "period", utc(2027, 1, 1), anchor=datetime(2027, 1, 1), cycle="month"
        ),
    ],
)
def test_naive_datetimes_are_rejected(call):
    with pytest.raises(ValueError, match="timezone-aware"):
        call()


def test_unknown_cycles_and_units_are_rejected():
    with pytest.raises(ValueError):
        add_cycles(utc(2027, 1, 1), "fortnight", 1)
    with pytest.raises(ValueError):
        window_bounds("second", utc(2027, 1, 1))


AT = utc(2027, 12, 31, 14, 37, 22, 500_000)


@pytest.mark.parametrize(
    ("unit", "start", "end"),
    [
        ("minute", utc(2027, 12, 31, 14, 37), utc(2027, 12, 31, 14, 38)),
        ("hour", utc(2027, 12, 31, 14), utc(2027, 12, 31, 15)),
        ("day", utc(2027, 12, 31), utc(2028, 1, 1)),
        ("month", utc(2027, 12, 1), utc(2028, 1, 1)),
    ],
)
def test_calendar_quota_windows_in_utc(unit, start, end):
    assert window_bounds(unit, AT) == (start, end)


def test_the_month_window_of_february_in_a_leap_year():
    assert window_bounds("month", utc(2028, 2, 29, 23, 59)) == (
        utc(2028, 2, 1),
        utc(2028, 3, 1),
    )


def test_the_period_quota_window_is_the_billing_period():
    anchor = utc(2027, 1, 31, 10)
    assert window_bounds("period", utc(2027, 3, 5), anchor=anchor, cycle="month") == (
        utc(2027, 2, 28, 10),
        utc(2027, 3, 31, 10),
    )
    with pytest.raises(ValueError, match="anchor and cycle"):
        window_bounds("period", utc(2027, 3, 5))


# -- properties -------------------------------------------------------------------

anchors = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.just(UTC),
)
cycles = st.sampled_from(list(Cycle))
indexes = st.integers(min_value=-200, max_value=1500)


@given(anchor=anchors, cycle=cycles, index=indexes)
def test_period_k_plus_1_starts_where_period_k_ends(anchor, cycle, index):
    start, end = period_bounds(anchor, cycle, index)
    next_start, _next_end = period_bounds(anchor, cycle, index + 1)
    assert start < end
    assert next_start == end


@given(anchor=anchors, index=indexes)
def test_a_monthly_period_starts_on_the_anchor_day_or_the_last_day_of_its_month(
    anchor, index
):
    start, end = period_bounds(anchor, Cycle.MONTH, index)
    months = anchor.year * 12 + anchor.month - 1 + index
    assert (start.year, start.month) == (months // 12, months % 12 + 1)
    last_day = calendar.monthrange(start.year, start.month)[1]
    assert start.day == min(anchor.day, last_day)
    assert start.time() == anchor.time()
    assert timedelta(days=28) <= end - start <= timedelta(days=31)


@given(anchor=anchors, cycle=cycles, at=anchors)
def test_period_containing_agrees_with_period_bounds(anchor, cycle, at):
    index, start, end = period_containing(anchor, cycle, at)
    assert (start, end) == period_bounds(anchor, cycle, index)
    assert start <= at < end


@given(at=anchors, unit=st.sampled_from(["minute", "hour", "day", "month"]))
def test_a_calendar_window_contains_its_instant(at, unit):
    start, end = window_bounds(unit, at)
    assert start <= at < end
    assert window_bounds(unit, end)[0] == end


# -- boundary instants --------------------------------------------------------------
# A period (or window) is [start, end): the instant a period starts belongs to it, and
# the microsecond before belongs to the one before. Anchors where the calendar is
# hardest: the 28th to the 31st (days some months lack), Feb 29 of leap years, the
# century years (2000 is a leap year, 2100 is not), and any time of day to the
# microsecond; each also seen from a zone other than UTC.

MICROSECOND = timedelta(microseconds=1)
ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-9, minutes=-30))]
)


@st.composite
def month_end_anchors(draw) -> datetime:
    year = draw(
        st.sampled_from([1996, 1999, 2000, 2023, 2024, 2027, 2028, 2096, 2099, 2100])
        | st.integers(min_value=1990, max_value=2099)
    )
    month = draw(st.integers(min_value=1, max_value=12))
    last = calendar.monthrange(year, month)[1]
    day = draw(st.integers(min_value=28, max_value=last))
    return datetime(
        year,
        month,
        day,
        draw(st.sampled_from([0, 23]) | st.integers(0, 23)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 59)),
        draw(st.sampled_from([0, 999_999]) | st.integers(0, 999_999)),
        tzinfo=UTC,
    )


@given(
    anchor=month_end_anchors(),
    cycle=cycles,
    index=st.integers(min_value=-30, max_value=400),
    zone=ZONES,
)
def test_a_period_boundary_belongs_to_the_period_it_starts(anchor, cycle, index, zone):
    start, end = period_bounds(anchor, cycle, index)
    previous_start, previous_end = period_bounds(anchor, cycle, index - 1)
    assert start == add_cycles(anchor, cycle, index) == previous_end

    for at in (start, start.astimezone(zone)):
        assert period_containing(anchor.astimezone(zone), cycle, at) == (
            index,
            start,
            end,
        )
        assert window_bounds("period", at, anchor=anchor, cycle=cycle) == (start, end)
    before = start - MICROSECOND
    assert period_containing(anchor, cycle, before) == (
        index - 1,
        previous_start,
        start,
    )
    assert window_bounds("period", before, anchor=anchor, cycle=cycle) == (
        previous_start,
        start,
    )
    # The last microsecond of the period is still in it.
    assert period_containing(anchor, cycle, end - MICROSECOND) == (index, start, end)


@given(
    at=month_end_anchors(),
    unit=st.sampled_from(["minute", "hour", "day", "month"]),
    zone=ZONES,
)
def test_a_calendar_window_boundary_belongs_to_the_window_it_starts(at, unit, zone):
    start, end = window_bounds(unit, at)
    following = window_bounds(unit, end.astimezone(zone))

    assert following[0] == end < following[1]
    assert window_bounds(unit, start.astimezone(zone)) == (start, end)
    assert window_bounds(unit, end - MICROSECOND) == (start, end)
    assert window_bounds(unit, start - MICROSECOND)[1] == start
