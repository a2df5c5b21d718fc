from __future__ import annotations

import re
from datetime import UTC, datetime

from django import forms
from django.utils import timezone

MONTH = re.compile(r"^(\d{4})-(\d{2})$")
MAX_MONTHS = 36


def _month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def _add_months(value: datetime, n: int) -> datetime:
    months = value.year * 12 + value.month - 1 + n
    return _month_start(months // 12, months % 12 + 1)


class MonthField(forms.CharField):
    widget = forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM"})

    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return None
        match = MONTH.match(value.strip())
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise forms.ValidationError("Enter a month as YYYY-MM.")
        return _month_start(int(match.group(1)), int(match.group(2)))


class RevenueFilterForm(forms.Form):
    """Months (inclusive, UTC) for the revenue page and its CSV export; the last 12
    months unless chosen."""

    start = MonthField(label="From")
    end = MonthField(label="To")

    def __init__(self, data=None, **kwargs):
        this_month = timezone.now().replace(
            day=1, hour=0, minute=0, second=0, microsecond=0
        )
        initial = {
            "start": _add_months(this_month, -11).strftime("%Y-%m"),
            "end": this_month.strftime("%Y-%m"),
        }
        if data is not None:
            data = {**initial, **{k: v for k, v in data.items() if v}}
        super().__init__(data, initial=initial, **kwargs)

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            if end < start:
                self.add_error("end", "The last month is before the first.")
            elif (end.year - start.year) * 12 + end.month - start.month >= MAX_MONTHS:
                self.add_error("end", f"Pick at most {MAX_MONTHS} months.")
        return cleaned

    def range(self) -> tuple[datetime, datetime]:
        """[first day of the first month, first day after the last month)."""
        return self.cleaned_data["start"], _add_months(self.cleaned_data["end"], 1)
