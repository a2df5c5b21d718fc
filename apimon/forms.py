from datetime import date

from django import forms
from django.core.validators import MaxValueValidator
from django.db.backends.base.operations import BaseDatabaseOperations

from apimon.models import Role
from apimon.validators import validate_single_line


class SingleLineField(forms.CharField):
    """A name or other one-line text: control characters and line breaks are
    refused next to the field (apimon.validators)."""

    default_validators = [validate_single_line]


class OrganizationForm(forms.Form):
    name = SingleLineField(
        max_length=100,
        label="Organization name",
        help_text="Shown in your store. Its address is made from it: /t/<name>/.",
        widget=forms.TextInput(
            attrs={"autofocus": True, "placeholder": "Acme Weather"}
        ),
    )


def int_max(model, name: str) -> int:
    """The largest value the model's integer field `name` holds: PostgreSQL's range
    for its type (Django's standard ranges, used on every database so that a run on
    SQLite refuses what PostgreSQL would), lowered by the field's own
    MaxValueValidator. A form field's `max_value`, so a larger number is an error
    next to the field instead of a database error."""
    field = model._meta.get_field(name)
    _low, high = BaseDatabaseOperations.integer_field_ranges[field.get_internal_type()]
    for validator in field.validators:
        if isinstance(validator, MaxValueValidator):
            high = min(high, validator.limit_value)
    return high


# The dates a report (usage, revenue) can ask for. Outside them the calendar
# arithmetic of a range (the day or month after its end) leaves Python's dates; no
# usage or payment is older than the Unix epoch.
EARLIEST_DATE = date(1970, 1, 1)
LATEST_DATE = date(9998, 12, 31)


def in_report_range(value: date) -> bool:
    return EARLIEST_DATE <= value <= LATEST_DATE


class SearchForm(forms.Form):
    """A search box (GET). Bounded, and Django's CharField refuses NUL bytes, which
    PostgreSQL cannot take in a query: a bad query is an error next to the box."""

    q = forms.CharField(required=False, max_length=200)

    def terms(self) -> dict[str, str] | None:
        """The cleaned terms, or None when the search is refused."""
        return self.cleaned_data if self.is_valid() else None

    def error_text(self) -> list[str]:
        return [e for errors in self.errors.values() for e in errors]


class InvitationForm(forms.Form):
    email = forms.EmailField(label="Email address")
    role = forms.ChoiceField(
        choices=[(Role.PUBLISHER, "Publisher"), (Role.OWNER, "Owner")],
        initial=Role.PUBLISHER,
        help_text="Publishers manage APIs and tiers; owners also handle billing, "
        "Stripe and members.",
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
