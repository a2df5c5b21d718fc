"""Dates on invoices and pages name months in English, whatever the locale."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from pricing.dates import day_month_year, strftime

ABBREVIATIONS = [
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
]


@pytest.mark.parametrize("month", range(1, 13))
def test_every_month_has_its_english_abbreviation(month):
    day = date(2027, month, 5)

    assert strftime(day, "%d %b %Y") == f"05 {ABBREVIATIONS[month - 1]} 2027"
    assert day_month_year(day) == f"5 {ABBREVIATIONS[month - 1]} 2027"


def test_full_names_and_numeric_directives_are_kept():
    at = datetime(2027, 9, 30, 14, 5, tzinfo=UTC)

    assert strftime(at, "%B %d, %H:%M") == "September 30, 14:05"
    assert strftime(at, "%d %b %H:%M") == "30 Sep 14:05"
