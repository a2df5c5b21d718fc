from __future__ import annotations

from datetime import timedelta

from django import forms

from apimon import clock
from apimon.forms import (
    EARLIEST_DATE,
    LATEST_DATE,
    SingleLineField,
    in_report_range,
)
from publisher.models import Api

MAX_RANGE_DAYS = 366


class _ListedChoices(forms.models.ModelChoiceIterator):
    """The choices from one plain read of the queryset. Django's own iterator reads
    them with `.iterator()`, which on PostgreSQL is a server-side cursor: three
    round trips (declare, fetch, close) for a few rows."""

    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.queryset:
            yield self.choice(obj)


class _ApiChoiceField(forms.ModelChoiceField):
    iterator = _ListedChoices


class UsageFilterForm(forms.Form):
    """Date range (inclusive, UTC days) and an optional API for the publisher's usage
    page and its CSV export."""

    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    api = _ApiChoiceField(
        queryset=Api.objects.none(), required=False, empty_label="All APIs", label="API"
    )

    def __init__(self, data=None, *, organization, **kwargs):
        today = clock.now().date()
        initial = {"start": today - timedelta(days=29), "end": today}
        if data is not None:
            data = {**{k: str(v) for k, v in initial.items()}, **data.dict()}
        super().__init__(data, initial=initial, **kwargs)
        # The choices need the APIs' names, not their documents.
        self.fields["api"].queryset = Api.objects.filter(
            organization=organization
        ).defer("openapi_spec", "documentation")

    def clean(self):
        cleaned = super().clean()
        for name in ("start", "end"):
            value = cleaned.get(name)
            if value is not None and not in_report_range(value):
                self.add_error(
                    name, f"Pick a date from {EARLIEST_DATE} to {LATEST_DATE}."
                )
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            if end < start:
                self.add_error("end", "The end date is before the start date.")
            elif (end - start).days >= MAX_RANGE_DAYS:
                self.add_error("end", f"Pick at most {MAX_RANGE_DAYS} days.")
        return cleaned


class IngestTokenForm(forms.Form):
    name = SingleLineField(
        required=False,
        max_length=80,
        error_messages={"max_length": "A token name has at most 80 characters."},
    )
