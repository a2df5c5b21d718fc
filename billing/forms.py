"""Forms of the monetization pages; and (below "Invoices") the revenue filter."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from django import forms
from django.core.cache import cache
from django_countries import countries

from apimon import clock
from apimon.forms import (
    EARLIEST_DATE,
    LATEST_DATE,
    SingleLineField,
    in_report_range,
)
from apimon.models import Organization, User
from billing.services import BillingDetails


class DunningForm(forms.ModelForm):
    """How long a subscription whose payment failed is still served (ON_HOLD) before
    the dunning job blocks it."""

    class Meta:
        model = Organization
        fields = ["dunning_grace_days"]
        labels = {"dunning_grace_days": "Grace period after a failed payment (days)"}
        help_texts = {
            "dunning_grace_days": "0 to 60. The subscriber keeps access for this "
            "long while they update their card; then access is blocked until "
            "the invoice is paid."
        }
        widgets = {"dunning_grace_days": forms.NumberInput(attrs={"min": 0, "max": 60})}


# Countries whose addresses have no postal code (the field is optional there).
NO_POSTAL_CODE = {"AE", "AG", "BS", "GH", "HK", "JM", "MO", "QA", "UG", "ZW"}


# E.164: a "+", a country code and 8 to 15 digits in all.
PHONE = re.compile(r"^\+[1-9]\d{7,14}$")


PHONE_SEPARATORS = re.compile(r"[\s().\-/]")


class BillingDetailsForm(forms.Form):
    """Billing information (on the platform's invoices) and contact information."""

    name = SingleLineField(
        label="Name on invoices",
        max_length=200,
        help_text="Your company, or your own name.",
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )
    line1 = SingleLineField(
        label="Address",
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "address-line1"}),
    )
    line2 = SingleLineField(
        label="Address line 2",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "address-line2"}),
    )
    city = SingleLineField(
        max_length=100, widget=forms.TextInput(attrs={"autocomplete": "address-level2"})
    )
    postal_code = SingleLineField(
        label="Postal code",
        max_length=20,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "postal-code"}),
    )
    state = SingleLineField(
        label="State, province or region",
        max_length=100,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "address-level1"}),
    )
    country = forms.ChoiceField(
        choices=lambda: [("", "Choose a country"), *countries],
        widget=forms.Select(attrs={"autocomplete": "country"}),
    )
    email = forms.EmailField(
        label="Billing email",
        help_text="Where the platform's invoices and receipts go.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    phone = SingleLineField(
        label="Phone",
        max_length=30,
        help_text="In international format, e.g. +1 415 555 0100.",
        widget=forms.TextInput(attrs={"autocomplete": "tel", "type": "tel"}),
    )

    def clean_phone(self) -> str:
        number = PHONE_SEPARATORS.sub("", self.cleaned_data["phone"])
        if number.startswith("00"):
            number = "+" + number[2:]
        if not PHONE.match(number):
            raise forms.ValidationError(
                "Enter the number in international format, starting with + and the "
                "country code, e.g. +1 415 555 0100."
            )
        return number

    def clean(self):
        data = super().clean()
        country = data.get("country")
        if country not in NO_POSTAL_CODE and not data.get("postal_code"):
            self.add_error("postal_code", "Enter the postal code.")
        for name in ("name", "line1", "line2", "city", "postal_code", "state"):
            if isinstance(data.get(name), str):
                data[name] = data[name].strip()
        return data

    def details(self) -> BillingDetails:
        data = self.cleaned_data
        return BillingDetails(
            name=data["name"],
            line1=data["line1"],
            line2=data["line2"],
            city=data["city"],
            postal_code=data["postal_code"],
            state=data["state"],
            country=data["country"],
            email=data["email"],
            phone=data["phone"],
        )

    @classmethod
    def initial_for(cls, organization: Organization, user: User) -> dict[str, str]:
        sub = getattr(organization, "platform_subscription", None)
        if sub is None:
            return {"name": organization.name, "email": user.email}
        return {
            "name": sub.billing_name,
            "line1": sub.address_line1,
            "line2": sub.address_line2,
            "city": sub.city,
            "postal_code": sub.postal_code,
            "state": sub.state,
            "country": sub.country,
            "email": sub.email,
            "phone": sub.phone,
        }


PASSWORD_ATTEMPTS = 5


PASSWORD_WINDOW = 5 * 60  # seconds


def _attempts_key(user: User, organization: Organization) -> str:
    return f"billing:password-failures:{user.pk}:{organization.pk}"


class PasswordConfirmForm(forms.Form):
    """The owner re-enters their password before a Stripe-changing action. Five
    wrong passwords in five minutes (per user and organization) lock it for the
    rest of the window."""

    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args, user: User, organization: Organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.organization = organization

    def clean_password(self) -> str:
        key = _attempts_key(self.user, self.organization)
        if cache.get(key, 0) >= PASSWORD_ATTEMPTS:
            raise forms.ValidationError(
                "Too many wrong passwords. Wait a few minutes and try again.",
                code="rate_limited",
            )
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            cache.add(key, 0, PASSWORD_WINDOW)
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, PASSWORD_WINDOW)
            raise forms.ValidationError(
                "That is not your password.", code="wrong_password"
            )
        cache.delete(key)
        return password


# --- Invoices (the billing engine) --------------------------------------------


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
        year, month = int(match.group(1)), int(match.group(2))
        if not in_report_range(date(max(year, 1), month, 1)):
            raise forms.ValidationError(
                f"Pick a month from {EARLIEST_DATE:%Y-%m} to {LATEST_DATE:%Y-%m}."
            )
        return _month_start(year, month)


class RevenueFilterForm(forms.Form):
    """Months (inclusive, UTC) for the revenue page and its CSV export; the last 12
    months unless chosen."""

    start = MonthField(label="From")
    end = MonthField(label="To")

    def __init__(self, data=None, *, latest: datetime | None = None, **kwargs):
        """`latest`: the newest payment; a demo's `run_billing --at` dates payments
        ahead of today, and the default range then reaches them."""
        this_month = max(clock.now(), latest or clock.now()).replace(
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
