"""Forms of the store. They check input and show errors next to the field; the
services they feed check it again and do the writes."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.forms.models import ModelChoiceIterator
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe

from apimon.forms import SearchForm, SingleLineField
from store.models import Application
from store.selectors import TierOffer

GRACE_CHOICES = [
    (0, "None: the old key stops working now"),
    (1, "1 hour"),
    (24, "24 hours"),
    (24 * 7, "7 days"),
]


class ApplicationForm(forms.Form):
    name = SingleLineField(
        max_length=80,
        widget=forms.TextInput(attrs={"placeholder": "My weather dashboard"}),
    )
    description = forms.CharField(
        required=False,
        max_length=2000,
        help_text="Optional: what the application does.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class CatalogSearchForm(SearchForm):
    tag = forms.CharField(required=False, max_length=200)


class KeyForm(forms.Form):
    name = SingleLineField(
        required=False,
        max_length=80,
        help_text="Optional, to tell keys apart (e.g. “production”).",
        widget=forms.TextInput(attrs={"placeholder": "production"}),
    )


class RotateForm(forms.Form):
    grace = forms.TypedChoiceField(
        label="The old key keeps working for",
        choices=GRACE_CHOICES,
        coerce=int,
        initial=24,
    )

    def grace_period(self) -> timedelta:
        return timedelta(hours=self.cleaned_data["grace"])


class _ListedChoices(ModelChoiceIterator):
    """The choices from the field's `listed` rows: a queryset read at most once
    (it keeps its rows), where Django's iterator queries a copy of the field's
    queryset each time the widget walks the choices (twice per render)."""

    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.field.listed:
            yield self.choice(obj)

    def __len__(self):
        empty = 1 if self.field.empty_label is not None else 0
        return len(self.field.listed) + empty

    def __bool__(self):
        return self.field.empty_label is not None or bool(self.field.listed)


def _attrs(attrs: dict) -> str:
    """An element's attributes as Django's `attrs.html` writes them."""
    return "".join(
        f" {conditional_escape(name)}"
        if value is True
        else f' {conditional_escape(name)}="{conditional_escape(str(value))}"'
        for name, value in attrs.items()
        if value is not False
    )


class PlainSelect(forms.Select):
    """A `<select>` written in Python, character for character what Django's
    `select.html` and `select_option.html` templates write (a test compares
    them): those include one template per option, ~0.1 ms each, and a
    subscriber's applications are listed on every API page they open."""

    def render(self, name, value, attrs=None, renderer=None):
        widget = self.get_context(name, value, attrs)["widget"]
        parts = [f'<select name="{conditional_escape(widget["name"])}"']
        parts.append(f"{_attrs(widget['attrs'])}>")
        for group_name, options, _index in widget["optgroups"]:
            if group_name:
                parts.append(f'\n  <optgroup label="{conditional_escape(group_name)}">')
            for option in options:
                parts.append(
                    f'\n  <option value="{conditional_escape(str(option["value"]))}"'
                    f"{_attrs(option['attrs'])}>{conditional_escape(option['label'])}"
                    "</option>\n"
                )
            if group_name:
                parts.append("\n  </optgroup>")
        parts.append("\n</select>")
        return mark_safe("".join(parts))  # noqa: S308 - every value escaped above


class ListedChoiceField(forms.ModelChoiceField):
    """A model choice that lists `listed` (the caller's queryset, which the page
    may show too: read once for both) and checks a posted choice against
    `queryset` as usual."""

    iterator = _ListedChoices
    widget = PlainSelect
    listed = Application.objects.none()


class SubscribeForm(forms.Form):
    """Choose one of your applications and an offered tier. Tiers that cannot be
    chosen (a paid tier while the organization takes no payments) are listed but
    refused, so the page can show them greyed with the reason."""

    application = ListedChoiceField(
        queryset=Application.objects.none(),
        empty_label=None,
        help_text="An application holds one subscription per API.",
    )
    tier = forms.TypedChoiceField(coerce=int, widget=forms.RadioSelect)

    def __init__(self, *args, applications, offers: list[TierOffer], **kwargs):
        super().__init__(*args, **kwargs)
        self.offers = {offer.tier.pk: offer for offer in offers}
        self.fields["application"].queryset = applications
        self.fields["application"].listed = applications
        self.fields["tier"].choices = [(o.tier.pk, o.tier.name) for o in offers]
        available = [o for o in offers if o.available]
        if len(available) == 1:
            self.fields["tier"].initial = available[0].tier.pk

    def clean_tier(self):
        offer = self.offers.get(self.cleaned_data["tier"])
        if offer is None:
            raise forms.ValidationError("Choose a tier.")
        if not offer.available:
            raise forms.ValidationError(f"{offer.tier.name}: {offer.reason}")
        return offer.tier


class ChangeTierForm(forms.Form):
    tier = forms.TypedChoiceField(coerce=int, widget=forms.RadioSelect)

    def __init__(self, *args, offers: list[TierOffer], current_tier_id: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.offers = {o.tier.pk: o for o in offers if o.tier.pk != current_tier_id}
        self.fields["tier"].choices = [
            (pk, o.tier.name) for pk, o in self.offers.items()
        ]

    def clean_tier(self):
        offer = self.offers.get(self.cleaned_data["tier"])
        if offer is None:
            raise forms.ValidationError("Choose another tier offered on this API.")
        if not offer.available:
            raise forms.ValidationError(f"{offer.tier.name}: {offer.reason}")
        return offer.tier


class CancelForm(forms.Form):
    when = forms.ChoiceField(
        label="When",
        choices=[
            ("period_end", "At the end of the current period"),
            ("now", "Now"),
        ],
        initial="period_end",
        widget=forms.RadioSelect,
    )


class BlockForm(forms.Form):
    reason = forms.CharField(
        max_length=1000,
        help_text="The subscriber sees this on their subscription page.",
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Tell the subscriber why."},
    )


def _select(label: str) -> forms.Select:
    return forms.Select(attrs={"aria-label": label, "class": "w-auto"})


class PublisherFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200)
    api = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, widget=_select("API")
    )
    tier = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, widget=_select("Tier")
    )
    state = forms.ChoiceField(required=False, widget=_select("State"))

    def __init__(self, *args, apis, tiers, states, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["api"].choices = [("", "All APIs")] + [
            (a.pk, f"{a.name} {a.version}") for a in apis
        ]
        self.fields["tier"].choices = [("", "All tiers")] + [
            (t.pk, t.name) for t in tiers
        ]
        self.fields["state"].choices = [("", "All states"), *states]
