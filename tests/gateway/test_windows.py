"""The quota window the gateway counts a request in, at the boundary instants: the
instant a window starts belongs to it (not to the one before), also when the gateway
holds the previous window in its cache. The gateway works on float epoch seconds;
the windows are the calendar's and the subscription's billing periods (anchors on
the 28th to the 31st, Feb 29, leap and century years)."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from gateway import meter
from gateway.proxy import Grant

UNITS = st.sampled_from(["second", "minute", "hour", "day", "month", "period"])
YEARS = st.sampled_from([1996, 2000, 2023, 2024, 2027, 2028, 2096, 2099]) | st.integers(
    min_value=1990, max_value=2099
)


@st.composite
def month_end_anchors(draw) -> datetime:
    year, month = draw(YEARS), draw(st.integers(min_value=1, max_value=12))
    day = draw(st.integers(min_value=28, max_value=calendar.monthrange(year, month)[1]))
    return datetime(
        year,
        month,
        day,
        draw(st.integers(0, 23)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 59)),
        draw(st.sampled_from([0, 999_999]) | st.integers(0, 999_999)),
        tzinfo=UTC,
    )


def grant(anchor: datetime, cycle: str) -> Grant:
    return Grant({"anchor_us": meter.epoch_us(anchor), "cycle": cycle}, expires=0.0)


@given(
    anchor=month_end_anchors(),
    cycle=st.sampled_from(["week", "month", "year"]),
    unit=UNITS,
    # Up to about ten years either side of the anchor, to the microsecond.
    offset_us=st.integers(min_value=-(10**14), max_value=3 * 10**14),
)
def test_a_window_boundary_belongs_to_the_window_it_starts(
    anchor, cycle, unit, offset_us
):
    at = (meter.epoch_us(anchor) + offset_us) / 1_000_000
    g = grant(anchor, cycle)

    start, end = g.window(unit, at)
    assert start <= at < end

    # The previous window is cached: its end is the next window's start.
    following = g.window(unit, end)
    assert following[0] == end < following[1]
    assert grant(anchor, cycle).window(unit, end) == following
    # The microsecond before the boundary is still in the window before.
    assert g.window(unit, end - 1e-6) == (start, end)
    assert grant(anchor, cycle).window(unit, start) == (start, end)


@given(anchor=month_end_anchors(), cycle=st.sampled_from(["week", "month", "year"]))
def test_the_first_period_starts_at_the_anchor_itself(anchor, cycle):
    at = meter.epoch_us(anchor) / 1_000_000

    start, _end = grant(anchor, cycle).window("period", at)

    assert datetime.fromtimestamp(start, UTC) == anchor
