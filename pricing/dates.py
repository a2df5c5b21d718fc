"""Dates as apimon writes them on invoices and pages, with English month names
whatever the process locale (`strftime("%b")` follows LC_TIME, so a server with a
German locale would write "Mär" on an invoice)."""

from __future__ import annotations

from datetime import date

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def strftime(value: date, pattern: str) -> str:
    """`value.strftime(pattern)` with English month names for %b ("Mar") and %B
    ("March"); every other directive is numeric."""
    name = MONTHS[value.month - 1]
    pattern = pattern.replace("%B", name).replace("%b", name[:3])
    return value.strftime(pattern)


def day_month_year(value: date) -> str:
    """ "5 Mar 2027": how invoice lines name a day."""
    return f"{value.day} {MONTHS[value.month - 1][:3]} {value.year}"
