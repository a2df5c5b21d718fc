"""Forms of the publisher console. They check input and show errors next to the
field; the services they feed check it again and do the writes."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from django import forms
from django.utils.html import format_html

from apimon.forms import SingleLineField, int_max
from apimon.models import Organization
from pricing.currencies import CURRENCIES, UNIT_PRICE_MAX_DECIMAL_PLACES
from pricing.rating import Band, Pricing, PricingModel, validate_pricing
from pricing.stripe_money import stripe_can_charge
from publisher.markdown import TooDeep, markdown_html
from publisher.meters import (
    CUSTOM_SOURCES,
    SCALES,
    meters_for_pricing,
    operations_text,
    scale_label,
)
from publisher.models import (
    Api,
    ApiState,
    BillingCycle,
    BillingPlan,
    MeterPrice,
    MeterPriceBand,
    QuotaUnit,
    RateUnit,
    Tier,
    Visibility,
)
from publisher.openapi import MAX_BYTES, operation_ids, parse_openapi
from publisher.operations import OperationsError, parse
from publisher.services import (
    MAX_TRIAL_DAYS,
    MeterPriceSpec,
    TierLimits,
    TierPrice,
    currency_problem,
)
from publisher.validators import (
    VERSION_HELP,
    parse_tags,
    validate_api_version,
    validate_backend_address,
    validate_backend_url,
    validate_tags,
)

# -- APIs -------------------------------------------------------------------------


class ApiForm(forms.Form):
    name = SingleLineField(max_length=100)
    version = SingleLineField(
        max_length=30,
        validators=[validate_api_version],
        help_text=VERSION_HELP,
        widget=forms.TextInput(attrs={"placeholder": "v1"}),
    )
    context = forms.SlugField(
        max_length=60,
        # HTML on purpose (the context in bold); the placeholders are escaped.
        help_text=format_html(
            "The API's path at the gateway, /gateway/{}/<b>{}</b>/{}/: letters, "
            "digits, - and _. Unique per organization and version.",
            "<org>",
            "<context>",
            "<version>",
        ),
        widget=forms.TextInput(attrs={"placeholder": "weather"}),
    )
    backend_url = forms.CharField(
        label="Backend URL",
        max_length=500,
        validators=[validate_backend_url],
        help_text="Where the gateway forwards calls: an http:// or https:// URL.",
        widget=forms.URLInput(attrs={"placeholder": "https://backend.example.com/v1"}),
    )
    description = forms.CharField(
        required=False,
        help_text="One or two sentences for the store's list.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    documentation = forms.CharField(
        required=False,
        help_text="Markdown. Shown in the store; HTML is sanitized (no scripts).",
        widget=forms.Textarea(attrs={"rows": 12}),
    )
    tags = forms.CharField(
        required=False,
        max_length=1000,
        help_text="Comma-separated, e.g. weather, forecast.",
    )
    visibility = forms.ChoiceField(
        choices=Visibility.choices,
        initial=Visibility.PUBLIC,
        widget=forms.RadioSelect,
    )
    openapi_file = forms.FileField(
        label="OpenAPI document",
        required=False,
        help_text=f"Optional: OpenAPI 3.x or Swagger 2.0 as .json, .yaml or .yml, "
        f"at most {MAX_BYTES // 1024} KB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".json,.yaml,.yml"}),
    )
    openapi_text = forms.CharField(
        label="…or paste it",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "openapi: 3.0.3 …"}),
    )
    openapi_remove = forms.BooleanField(
        label="Remove the current OpenAPI document", required=False
    )

    def __init__(
        self,
        data=None,
        files=None,
        *,
        organization: Organization,
        api: Api | None = None,
    ) -> None:
        initial = {}
        if api is not None:
            initial = {
                "name": api.name,
                "version": api.version,
                "context": api.context,
                "backend_url": api.backend_url,
                "description": api.description,
                "documentation": api.documentation,
                "tags": ", ".join(t.name for t in api.tags.all()),
                "visibility": api.visibility,
            }
        super().__init__(data, files, initial=initial)
        self.organization = organization
        self.api = api
        self.openapi_spec: dict | None = None
        self.openapi_filename = ""
        if api is None or not api.openapi_spec:
            del self.fields["openapi_remove"]
        if api is not None and api.state != ApiState.CREATED:
            # Subscribers' code calls this address: see services.api_update.
            for name in ("version", "context"):
                self.fields[name].disabled = True
                self.fields[name].help_text = (
                    "Fixed once the API has been published: create a new version "
                    "to change it."
                )

    def clean_backend_url(self) -> str:
        url = self.cleaned_data["backend_url"]
        validate_backend_address(url)  # resolves the name: after the syntax checks
        return url

    def clean_documentation(self) -> str:
        text = self.cleaned_data["documentation"]
        try:
            markdown_html(text)
        except TooDeep as exc:
            raise forms.ValidationError(str(exc)) from None
        return text

    def clean_tags(self) -> list[str]:
        names = parse_tags(self.cleaned_data["tags"])
        validate_tags(names)
        return names

    def clean_openapi_file(self):
        upload = self.cleaned_data.get("openapi_file")
        if upload and upload.size > MAX_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {MAX_BYTES // 1024} KB."
            )
        return upload

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        context, version = data.get("context"), data.get("version")
        if context and version:
            taken = Api.objects.filter(
                organization=self.organization, context=context, version=version
            )
            if self.api is not None:
                taken = taken.exclude(pk=self.api.pk)
            if taken.exists():
                self.add_error(
                    "context",
                    f"Another API already uses /{context}/{version}/ in this "
                    "organization.",
                )
        upload, text = data.get("openapi_file"), data.get("openapi_text", "").strip()
        try:
            if upload:
                self.openapi_spec = parse_openapi(upload.read(), upload.name)
                self.openapi_filename = upload.name[-200:]
            elif text:
                self.openapi_spec = parse_openapi(text)
                self.openapi_filename = "pasted"
        except forms.ValidationError as exc:
            self.add_error("openapi_file" if upload else "openapi_text", exc)
        return data

    def service_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of services.api_create / api_update."""
        data = self.cleaned_data
        kwargs = {
            key: data[key]
            for key in (
                "name",
                "version",
                "context",
                "backend_url",
                "description",
                "documentation",
                "visibility",
                "tags",
            )
        }
        if self.openapi_spec is not None:
            kwargs["openapi_spec"] = self.openapi_spec
            kwargs["openapi_filename"] = self.openapi_filename
        elif data.get("openapi_remove"):
            kwargs["openapi_spec"] = None
        return kwargs


class OfferForm(forms.Form):
    """Which tiers an API is offered on."""

    tiers = forms.ModelMultipleChoiceField(
        queryset=Tier.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, data=None, *, tiers, initial_tiers) -> None:
        super().__init__(data, initial={"tiers": list(initial_tiers)})
        self.fields["tiers"].queryset = tiers


# -- tiers ------------------------------------------------------------------------

BAND_MODELS = {PricingModel.GRADUATED, PricingModel.VOLUME}
# The fields of a meter's price row each model uses; the row only reads these (the
# others may hold stale values from a model the publisher switched away from, hidden
# in the page), so their errors are dropped too. The quota fields are always used.
METER_MODEL_FIELDS: dict[str, set[str]] = {
    PricingModel.FREE: set(),
    PricingModel.PER_UNIT: {"unit_price"},
    PricingModel.FLAT_PLUS_OVERAGE: {
        "included_units",
        "overage_price",
        "overage_block_size",
    },
    PricingModel.GRADUATED: {"bands"},
    PricingModel.VOLUME: {"bands"},
}
# The tier form's own price fields: the version's fee, currency, cycle and trial.
PRICING_FIELDS = (
    "billing_plan",
    "currency",
    "billing_cycle",
    "trial_days",
    "fixed_fee",
)
COMMON_CURRENCIES = ("usd", "eur", "gbp", "jpy", "cad", "aud", "chf", "inr", "bhd")


def _currency_label(code: str) -> str:
    c = CURRENCIES[code]
    decimals = "no decimals" if c.exponent == 0 else f"{c.exponent} decimals"
    return f"{code.upper()} — {c.name} ({decimals})"


def currency_choices(keep: str | None = None) -> list:
    """The currencies a commercial tier can be sold in: those Stripe can charge
    (`pricing.stripe_money.stripe_can_charge`), common ones first. ``keep`` is the
    edited tier's current currency: shown even when Stripe cannot charge it (marked
    so), so that the form displays what the tier is instead of silently switching
    it to another currency; saving it as a commercial tier is then refused."""
    common = [(code, _currency_label(code)) for code in COMMON_CURRENCIES]
    rest = [
        (code, _currency_label(code))
        for code in sorted(CURRENCIES)
        if stripe_can_charge(code)
    ]
    groups = [("Common", common), ("Currencies Stripe can charge", rest)]
    if keep and keep in CURRENCIES and not stripe_can_charge(keep):
        label = f"{_currency_label(keep)} · Stripe cannot charge it"
        groups.append(("This tier's current currency", [(keep, label)]))
    return groups


class CurrencyField(forms.ChoiceField):
    """A currency select that offers only what Stripe can charge but accepts any ISO
    4217 code, so that a currency Stripe cannot charge gets the form's own clear
    error next to the field, not "Select a valid choice"."""

    def valid_value(self, value: str) -> bool:
        return value in CURRENCIES or super().valid_value(value)


def money_field(label: str, help_text: str = "") -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=False,
        min_value=Decimal(0),
        max_digits=24,
        decimal_places=UNIT_PRICE_MAX_DECIMAL_PLACES,
        help_text=help_text,
        widget=forms.NumberInput(attrs={"step": "any", "placeholder": "0.00"}),
    )


METER_MODEL_CHOICES = [
    (PricingModel.FREE.value, "Free (counted, not charged)"),
    (PricingModel.PER_UNIT.value, "Price per unit"),
    (PricingModel.FLAT_PLUS_OVERAGE.value, "Included units, then overage"),
    (PricingModel.GRADUATED.value, "Graduated bands"),
    (PricingModel.VOLUME.value, "Volume bands"),
]
QUOTA_FIELDS = ("quota_limit", "quota_unit", "stop_on_quota_reach")
BAND_UP_TO_MAX = int_max(MeterPriceBand, "up_to")


class MeterPriceForm(forms.Form):
    """One meter's row of the tier form, `requests` included: its price (typed per
    the meter's display scale, stored per unit) and optional quota (not for
    requests: their quota is the tier's own limit, which is not versioned). Fields
    the chosen model does not use are ignored."""

    pricing_model = forms.ChoiceField(
        label="Pricing", choices=METER_MODEL_CHOICES, initial=PricingModel.FREE
    )
    unit_price = money_field("Price")
    included_units = forms.IntegerField(
        label="Included units",
        required=False,
        min_value=0,
        max_value=int_max(MeterPrice, "included_units"),
    )
    overage_price = money_field("Overage price per block")
    overage_block_size = forms.IntegerField(
        label="Block size (units)",
        required=False,
        min_value=1,
        max_value=int_max(MeterPrice, "overage_block_size"),
        help_text="A partial block counts as a whole one.",
    )
    bands = forms.CharField(
        label="Bands",
        required=False,
        max_length=5_000,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "1000000 0.002\n* 0.001"}
        ),
        help_text="One band per line: up to (units, inclusive; * on the last, "
        "open-ended band), the price per display scale, then an optional flat fee.",
    )
    quota_limit = forms.IntegerField(
        label="Quota (units)",
        required=False,
        min_value=1,
        max_value=int_max(Tier, "quota_limit"),
        help_text="Empty = unlimited.",
    )
    quota_unit = forms.ChoiceField(
        label="Quota window", choices=QuotaUnit.choices, initial=QuotaUnit.MONTH
    )
    stop_on_quota_reach = forms.BooleanField(
        label="Stop at the quota (429)", required=False, initial=True
    )

    def __init__(self, data=None, *, meter, initial=None) -> None:
        super().__init__(data, prefix=f"meter-{meter.key}", initial=initial)
        self.meter = meter
        self.scale = meter.display_scale
        unit = meter.unit_label
        label = scale_label(self.scale)
        per = f" per {label} {unit}s" if self.scale > 1 else f" per {unit}"
        self.fields["unit_price"].label = f"Price{per}"
        self.fields["included_units"].label = f"Included {unit}s"
        self.fields["overage_block_size"].label = f"Block size ({unit}s)"
        self.fields["bands"].help_text = (
            f"One band per line: up to ({unit}s, inclusive; * on the last, "
            f"open-ended band), the price{per}, then an optional flat fee."
        )
        if meter.is_builtin:
            for name in QUOTA_FIELDS:
                del self.fields[name]

    def full_clean(self) -> None:
        super().full_clean()
        if not self.is_bound:
            return
        model = self.data.get(self.add_prefix("pricing_model"), "")
        unused = set(self.fields) - {"pricing_model", *QUOTA_FIELDS}
        unused -= METER_MODEL_FIELDS.get(model, set())
        for name in unused:
            self._errors.pop(name, None)

    def clean_bands(self) -> tuple[Band, ...]:
        bands = []
        for number, line in enumerate(
            self.cleaned_data.get("bands", "").splitlines(), 1
        ):
            parts = line.split()
            if not parts:
                continue
            try:
                if len(parts) not in (2, 3):
                    raise ValueError
                up_to = None if parts[0] in ("*", "∞") else int(parts[0])
                price = Decimal(parts[1])
                fee = Decimal(parts[2]) if len(parts) == 3 else Decimal(0)
                if not (price.is_finite() and fee.is_finite()):
                    raise ValueError
            except (ValueError, ArithmeticError):
                raise forms.ValidationError(
                    f"Line {number}: write up-to, price and an optional flat fee, "
                    "e.g. 1000000 0.002 (or * 0.001 on the last band)."
                ) from None
            if up_to is not None and not 1 <= up_to <= BAND_UP_TO_MAX:
                raise forms.ValidationError(
                    f"Line {number}: “up to” must be 1 to {BAND_UP_TO_MAX:,}."
                )
            bands.append(Band(up_to, self._per_unit(price), fee))
        return tuple(bands)

    def _per_unit(self, value: Decimal | None) -> Decimal:
        """A price typed per display scale → per unit (exact: the scale is a power
        of ten)."""
        if value is None:
            return Decimal(0)
        return value.scaleb(-(len(str(self.scale)) - 1))

    def spec(self, currency: str) -> MeterPriceSpec | None:
        """The row as the service's value, or None if it has errors."""
        if not self.is_valid():
            return None
        d = self.cleaned_data
        model = PricingModel(d["pricing_model"])
        overage = model is PricingModel.FLAT_PLUS_OVERAGE
        pricing = Pricing(
            model=model,
            currency=currency,
            unit_price=self._per_unit(d.get("unit_price"))
            if model is PricingModel.PER_UNIT
            else Decimal(0),
            included_requests=(d.get("included_units") or 0) if overage else 0,
            overage_price=_zero(d.get("overage_price")) if overage else Decimal(0),
            overage_block_size=(d.get("overage_block_size") or 1) if overage else 1,
            bands=d["bands"] if model in BAND_MODELS else (),
        )
        return MeterPriceSpec(
            meter=self.meter.key,
            pricing=pricing,
            quota_limit=d.get("quota_limit"),
            quota_unit=d.get("quota_unit", QuotaUnit.MONTH),
            stop_on_quota_reach=d.get("stop_on_quota_reach", True),
        )

    def add_pricing_errors(self, errors: list[tuple[str, str]]) -> None:
        unit = self.meter.unit_label
        for key, message in errors:
            message = message.replace("requests", f"{unit}s").replace("request", unit)
            if key.startswith("bands-"):
                _bands, index, _name = key.split("-", 2)
                self.add_error("bands", f"Line {int(index) + 1}: {message}")
            elif key == "bands":
                self.add_error("bands", message)
            elif key == "included_requests":
                self.add_error("included_units", message)
            elif key in self.fields:
                self.add_error(key, message)
            else:
                self.add_error("pricing_model", message)


def _meter_initial(spec: MeterPriceSpec, scale: int) -> dict[str, Any]:
    p = spec.pricing
    shift = len(str(scale)) - 1

    def shown(value: Decimal) -> str:
        return _plain(value.scaleb(shift))

    bands = "\n".join(
        f"{b.up_to if b.up_to is not None else '*'} {shown(b.unit_price)}"
        + (f" {_plain(b.flat_fee)}" if b.flat_fee else "")
        for b in p.bands
    )
    return {
        "pricing_model": p.model.value,
        "unit_price": shown(p.unit_price),
        "included_units": p.included_requests,
        "overage_price": _plain(p.overage_price),
        "overage_block_size": p.overage_block_size,
        "bands": bands,
        "quota_limit": spec.quota_limit,
        "quota_unit": spec.quota_unit,
        "stop_on_quota_reach": spec.stop_on_quota_reach,
    }


class TierForm(forms.Form):
    """A tier: its limits (the requests' quota among them) and its price — one
    fixed fee, currency, cycle and trial, and a `MeterPriceForm` row per meter,
    `requests` first (`meter_forms`)."""

    name = SingleLineField(max_length=60)
    description = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    quota_limit = forms.IntegerField(
        label="Quota",
        required=False,
        min_value=1,
        max_value=int_max(Tier, "quota_limit"),
        help_text="Requests allowed per window; empty = unlimited.",
    )
    quota_unit = forms.ChoiceField(
        label="Quota window", choices=QuotaUnit.choices, initial=QuotaUnit.MONTH
    )
    stop_on_quota_reach = forms.BooleanField(
        label="Stop at the quota (answer 429) instead of allowing overage",
        required=False,
        initial=True,
    )
    rate_limit = forms.IntegerField(
        label="Burst rate limit",
        required=False,
        min_value=1,
        max_value=int_max(Tier, "rate_limit"),
        help_text="Requests per second or minute; empty = none.",
    )
    rate_unit = forms.ChoiceField(
        label="Rate window", choices=RateUnit.choices, initial=RateUnit.SECOND
    )
    count_every_request = forms.BooleanField(
        label="Count every request (not only 2xx/3xx answers of the backend)",
        required=False,
    )
    billing_plan = forms.ChoiceField(
        choices=BillingPlan.choices,
        initial=BillingPlan.FREE,
        widget=forms.RadioSelect,
    )
    currency = CurrencyField(initial="usd")
    billing_cycle = forms.ChoiceField(
        choices=BillingCycle.choices, initial=BillingCycle.MONTH
    )
    trial_days = forms.IntegerField(
        min_value=0,
        max_value=MAX_TRIAL_DAYS,
        initial=0,
        required=False,
        help_text="Days free before the first charge; 0 = no trial.",
    )
    fixed_fee = money_field(
        "Fixed fee per period",
        "Charged in advance each period, on top of what the meters below cost; "
        "empty = none.",
    )
    migrate_existing = forms.BooleanField(
        label="Move existing subscribers to the new price at their next period",
        required=False,
        help_text="If unticked, they keep their current price until they change tier.",
    )

    def __init__(
        self,
        data=None,
        *,
        organization: Organization,
        tier: Tier | None = None,
    ) -> None:
        initial: dict[str, Any] = {}
        sold: dict[str, MeterPriceSpec] = {}
        if tier is not None:
            initial, sold = _tier_initial(tier)
        super().__init__(data, initial=initial)
        self.organization = organization
        self.tier = tier
        self.fields["currency"].choices = currency_choices(keep=initial.get("currency"))
        self.tier_price: TierPrice | None = None
        if tier is None:
            del self.fields["migrate_existing"]
        self.meter_forms = [
            MeterPriceForm(
                data,
                meter=meter,
                initial=_meter_initial(sold[meter.key], meter.display_scale)
                if meter.key in sold
                else None,
            )
            for meter in meters_for_pricing(organization.pk, requests=True)
        ]

    @property
    def requests_form(self) -> MeterPriceForm:
        return self.meter_forms[0]

    @property
    def other_meter_forms(self) -> list[MeterPriceForm]:
        return self.meter_forms[1:]

    # -- validation

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        taken = Tier.objects.filter(organization=self.organization, name__iexact=name)
        if self.tier is not None:
            taken = taken.exclude(pk=self.tier.pk)
        if taken.exists():
            raise forms.ValidationError(f"There is already a tier named “{name}”.")
        return name

    def _commercial(self) -> bool:
        return self.cleaned_data.get("billing_plan") == BillingPlan.COMMERCIAL

    def _priced_rows(self) -> list[MeterPriceForm]:
        """The rows read: on a free tier the requests' row is hidden and ignored
        (requests are free), the other meters' rows may still set quotas."""
        return self.meter_forms if self._commercial() else self.other_meter_forms

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        commercial = self._commercial()
        if not commercial:
            # Hidden in the page and ignored: a leftover bad value must not block.
            for name in set(PRICING_FIELDS) - {"billing_plan"}:
                self._errors.pop(name, None)
        currency = data.get("currency") or "usd"
        problem = commercial and currency_problem(Pricing(PricingModel.FLAT, currency))
        if problem and "currency" not in self._errors:
            self.add_error("currency", problem)
        # Every row is checked, so that all the price's errors show at once.
        specs = self._clean_meters(currency, commercial)
        if specs is None or any(name in self._errors for name in PRICING_FIELDS):
            return data
        fee = _zero(data.get("fixed_fee")) if commercial else Decimal(0)
        if commercial and not fee and all(spec.is_free for spec in specs):
            self.add_error(
                "fixed_fee",
                "A commercial tier must charge something: a fixed fee, or a price "
                "for requests or another meter.",
            )
            return data
        price = TierPrice.of_meters(
            currency=currency,
            fixed_fee=fee,
            billing_cycle=data.get("billing_cycle") or BillingCycle.MONTH,
            trial_days=(data.get("trial_days") or 0) if commercial else 0,
            meters=specs,
        )
        errors = validate_pricing(price.pricing)
        for key, message in errors:  # the fee's own; each row was checked above
            self.add_error(key if key in self.fields else None, message)
        if not errors:
            self.tier_price = price
        return data

    def _clean_meters(
        self, currency: str, commercial: bool
    ) -> list[MeterPriceSpec] | None:
        """Each read row's price, or None when a row has errors (shown next to
        its fields)."""
        rows = self._priced_rows()
        specs = [form.spec(currency) for form in rows]
        if any(spec is None for spec in specs):
            return None
        for form, spec in zip(rows, specs, strict=True):
            if spec.is_free:
                continue
            if not commercial:
                form.add_error(
                    "pricing_model",
                    "A free tier charges nothing: choose Commercial to price meters.",
                )
            else:
                form.add_pricing_errors(validate_pricing(spec.pricing))
        if any(form.errors for form in rows):
            return None
        return specs

    def is_valid(self) -> bool:
        return super().is_valid() and self.tier_price is not None

    def pricing_errors(self) -> list[str]:
        """The price's problems as sentences, for the live preview: the form's own
        price fields, then each read meter row's (named by its meter)."""
        messages = []
        for name in PRICING_FIELDS:
            for error in self.errors.get(name, []):
                messages.append(f"{self.fields[name].label or name}: {error}")
        messages += self.errors.get("__all__", [])
        for form in self._priced_rows() if hasattr(self, "cleaned_data") else []:
            messages += [
                f"{form.meter.display_name}: {message}"
                for errors in form.errors.values()
                for message in errors
            ]
        return messages

    # -- for the services

    def limits(self) -> TierLimits:
        d = self.cleaned_data
        return TierLimits(
            quota_limit=d.get("quota_limit"),
            quota_unit=d["quota_unit"],
            stop_on_quota_reach=d.get("stop_on_quota_reach", False),
            rate_limit=d.get("rate_limit"),
            rate_unit=d["rate_unit"],
            count_every_request=d.get("count_every_request", False),
        )

    def price(self) -> TierPrice:
        assert self.tier_price is not None, "call is_valid() first"
        price = self.tier_price
        return price if not price.is_free else replace(price, trial_days=0)


def _zero(value: Decimal | None) -> Decimal:
    return Decimal(0) if value is None else value


def _tier_initial(tier: Tier) -> tuple[dict[str, Any], dict[str, MeterPriceSpec]]:
    """The form's values of a tier, and its current version's price per meter
    key (`requests` included) for the meter rows."""
    initial: dict[str, Any] = {
        "name": tier.name,
        "description": tier.description,
        **TierLimits.of(tier).__dict__,
        "billing_plan": tier.billing_plan,
    }
    version = tier.current_version
    if version is None:
        return initial, {}
    price = TierPrice.of(version)
    initial.update(
        {
            "currency": version.currency,
            "billing_cycle": version.billing_cycle,
            "trial_days": version.trial_days,
            "fixed_fee": _plain(price.fixed_fee) if price.fixed_fee else "",
        }
    )
    return initial, {spec.meter: spec for spec in price.meter_specs()}


def _plain(value: Decimal) -> str:
    """0.000400000000 → "0.0004": the form shows what the publisher typed."""
    return format(value.normalize(), "f")


# -- meters -----------------------------------------------------------------------


class MeterForm(forms.Form):
    """A meter of an API (publisher.meters). The key is typed once, at creation."""

    key = forms.CharField(
        max_length=40,
        help_text="Lowercase letters, digits and hyphens, e.g. tokens. Fixed once "
        "created: the backend reports it as the header Apimon-Meter-<key>.",
    )
    display_name = SingleLineField(max_length=60, help_text="e.g. Tokens")
    unit_label = SingleLineField(max_length=40, help_text="One unit, e.g. token")
    display_scale = forms.TypedChoiceField(
        coerce=int,
        choices=[(n, f"per {n:,} unit{'s' if n > 1 else ''}") for n in SCALES],
        initial=1,
        help_text="Prices are typed and shown per this many units, e.g. per 1,000.",
    )
    source = forms.ChoiceField(choices=[])
    operations = forms.CharField(
        required=False,
        max_length=20_000,
        widget=forms.Textarea(
            attrs={"rows": 5, "placeholder": "POST /search 5\nGET /status 0"}
        ),
        help_text="Weighted operations only: one per line, METHOD /path units "
        "(a {name} segment matches any value, * any method) or, with the API's "
        "OpenAPI document, operationId units. Unlisted operations weigh 1.",
    )

    def __init__(self, *args, api=None, meter=None, **kwargs) -> None:
        self.api = api
        if meter is not None:
            kwargs.setdefault(
                "initial",
                {
                    "key": meter.key,
                    "display_name": meter.display_name,
                    "unit_label": meter.unit_label,
                    "display_scale": meter.display_scale,
                    "source": meter.source,
                    "operations": operations_text(meter),
                },
            )
        super().__init__(*args, **kwargs)
        self.fields["source"].choices = [(s.value, s.label) for s in CUSTOM_SOURCES]
        if meter is not None:
            del self.fields["key"]

    def clean_operations(self) -> list[dict]:
        try:
            return parse(
                self.cleaned_data.get("operations") or "",
                operation_ids(self.api.openapi_spec if self.api else None),
            )
        except OperationsError as exc:
            raise forms.ValidationError(exc.messages) from None

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        kwargs = {
            "display_name": data["display_name"],
            "unit_label": data["unit_label"],
            "display_scale": data["display_scale"],
            "source": data["source"],
            "operations_list": data["operations"],
        }
        if "key" in data:
            kwargs["key"] = data["key"]
        return kwargs
