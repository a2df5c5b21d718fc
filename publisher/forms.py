"""Forms of the publisher console. They check input and show errors next to the
field; the services they feed check it again and do the writes."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from django import forms
from django.forms import formset_factory
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
from publisher.models import PricingModel as ModelChoice
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
# The pricing fields each model uses; the form only reads these (the others may hold
# stale values from a section the publisher hid by switching model).
MODEL_FIELDS: dict[str, set[str]] = {
    PricingModel.FREE: set(),
    PricingModel.FLAT: {"fixed_fee"},
    PricingModel.PER_UNIT: {"unit_price"},
    PricingModel.FLAT_PLUS_OVERAGE: {
        "fixed_fee",
        "included_requests",
        "overage_price",
        "overage_block_size",
    },
    PricingModel.GRADUATED: set(),
    PricingModel.VOLUME: set(),
}
PRICING_FIELDS = (
    "billing_plan",
    "pricing_model",
    "currency",
    "billing_cycle",
    "trial_days",
    "fixed_fee",
    "unit_price",
    "included_requests",
    "overage_price",
    "overage_block_size",
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


class BandForm(forms.Form):
    up_to = forms.IntegerField(
        label="Up to (requests)",
        required=False,
        min_value=1,
        max_value=int_max(MeterPriceBand, "up_to"),
        widget=forms.NumberInput(attrs={"placeholder": "∞ (open-ended)"}),
    )
    unit_price = money_field("Price per request")
    flat_fee = money_field("Flat fee")

    def is_used(self) -> bool:
        data = getattr(self, "cleaned_data", {})
        return any(
            data.get(key) is not None for key in ("up_to", "unit_price", "flat_fee")
        )


BandFormSet = formset_factory(BandForm, extra=0, max_num=50, validate_max=True)


METER_MODEL_CHOICES = [
    (PricingModel.FREE.value, "Free (counted, not charged)"),
    (PricingModel.PER_UNIT.value, "Price per unit"),
    (PricingModel.FLAT_PLUS_OVERAGE.value, "Included units, then overage"),
    (PricingModel.GRADUATED.value, "Graduated bands"),
    (PricingModel.VOLUME.value, "Volume bands"),
]


class MeterPriceForm(forms.Form):
    """One meter's row of the tier form: its price (typed per the meter's display
    scale, stored per unit) and optional quota. Fields the chosen model does not
    use are ignored."""

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
        label = scale_label(self.scale)
        per = f" per {label} {meter.unit_label}s" if self.scale > 1 else " per unit"
        self.fields["unit_price"].label = f"Price{per}"

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
                if up_to is not None and not 1 <= up_to <= int_max(
                    MeterPriceBand, "up_to"
                ):
                    raise ValueError
            except (ValueError, ArithmeticError):
                raise forms.ValidationError(
                    f"Line {number}: write up-to, price and an optional flat fee, "
                    "e.g. 1000000 0.002 (or * 0.001 on the last band)."
                ) from None
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
            quota_unit=d["quota_unit"],
            stop_on_quota_reach=d.get("stop_on_quota_reach", False),
        )

    def add_pricing_errors(self, errors: list[tuple[str, str]]) -> None:
        unit = self.meter.unit_label
        for key, message in errors:
            message = message.replace("requests", f"{unit}s").replace("request", unit)
            if key.startswith("bands"):
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
    pricing_model = forms.ChoiceField(
        required=False,
        choices=[("", "— choose —")]
        + [c for c in ModelChoice.choices if c[0] != ModelChoice.FREE],
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
    fixed_fee = money_field("Flat fee per period", "Charged in advance each period.")
    unit_price = money_field(
        "Price per request", f"Up to {UNIT_PRICE_MAX_DECIMAL_PLACES} decimals."
    )
    included_requests = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=int_max(MeterPrice, "included_units"),
        initial=0,
        help_text="Included in the flat fee.",
    )
    overage_price = money_field("Overage price per block")
    overage_block_size = forms.IntegerField(
        label="Block size (requests)",
        required=False,
        min_value=1,
        max_value=int_max(MeterPrice, "overage_block_size"),
        initial=1,
        help_text="A partial block counts as a whole one.",
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
        initial, band_initial = {}, [{}, {}, {}]
        if tier is not None:
            initial, band_initial = _tier_initial(tier)
        super().__init__(data, initial=initial)
        self.organization = organization
        self.tier = tier
        self.fields["currency"].choices = currency_choices(keep=initial.get("currency"))
        self.bands = BandFormSet(data, prefix="bands", initial=band_initial)
        self.band_errors: list[str] = []
        self.pricing: Pricing | None = None
        self.meter_specs: tuple[MeterPriceSpec, ...] | None = None
        if tier is None:
            del self.fields["migrate_existing"]
        sold = {}
        if tier is not None and tier.current_version is not None:
            sold = {m.meter: m for m in TierPrice.of(tier.current_version).meters}
        self.meter_forms = [
            MeterPriceForm(
                data,
                meter=meter,
                initial=_meter_initial(sold[meter.key], meter.display_scale)
                if meter.key in sold
                else None,
            )
            for meter in meters_for_pricing(organization.pk)
        ]

    # -- validation

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        taken = Tier.objects.filter(organization=self.organization, name__iexact=name)
        if self.tier is not None:
            taken = taken.exclude(pk=self.tier.pk)
        if taken.exists():
            raise forms.ValidationError(f"There is already a tier named “{name}”.")
        return name

    def _charged_meters(self) -> bool:
        return any(
            f.is_valid() and f.cleaned_data["pricing_model"] != PricingModel.FREE
            for f in self.meter_forms
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        self._drop_errors_of_unused_fields()
        if (
            data.get("billing_plan") == BillingPlan.COMMERCIAL
            and not data.get("pricing_model")
            and not self._charged_meters()
        ):
            self.add_error(
                "pricing_model",
                "A commercial tier must charge something: choose a pricing model.",
            )
        if any(name in self._errors for name in PRICING_FIELDS):
            return data
        model = self._model()
        problem = currency_problem(
            Pricing(model=model, currency=data.get("currency") or "usd")
        )
        if problem:
            self.add_error("currency", problem)
            return data
        bands: list[Band] = []
        rows: list[int] = []  # bands[i] came from formset form rows[i]
        if model in BAND_MODELS:
            if not self.bands.is_valid():
                return data
            for i, form in enumerate(self.bands.forms):
                if form.is_used():
                    d = form.cleaned_data
                    bands.append(
                        Band(
                            up_to=d.get("up_to"),
                            unit_price=_zero(d.get("unit_price")),
                            flat_fee=_zero(d.get("flat_fee")),
                        )
                    )
                    rows.append(i)
        used = MODEL_FIELDS[model]
        pricing = Pricing(
            model=model,
            currency=data.get("currency") or "usd",
            fixed_fee=_zero(data.get("fixed_fee")) if "fixed_fee" in used else 0,
            unit_price=_zero(data.get("unit_price")) if "unit_price" in used else 0,
            included_requests=(data.get("included_requests") or 0)
            if "included_requests" in used
            else 0,
            overage_price=_zero(data.get("overage_price"))
            if "overage_price" in used
            else 0,
            overage_block_size=(data.get("overage_block_size") or 1)
            if "overage_block_size" in used
            else 1,
            bands=tuple(bands),
        )
        errors = validate_pricing(pricing)
        for key, message in errors:
            if key.startswith("bands-"):
                _prefix, index, name = key.split("-", 2)
                self.bands.forms[rows[int(index)]].add_error(name, message)
            elif key == "bands":
                self.band_errors.append(message)
            elif key in self.fields:
                self.add_error(key, message)
            else:
                self.add_error(None, message)
        if not errors:
            self.pricing = pricing
        self._clean_meters(pricing.currency)
        return data

    def _clean_meters(self, currency: str) -> None:
        specs = [form.spec(currency) for form in self.meter_forms]
        if any(spec is None for spec in specs):
            return
        commercial = self.cleaned_data.get("billing_plan") == BillingPlan.COMMERCIAL
        for form, spec in zip(self.meter_forms, specs, strict=True):
            if spec.is_free:
                continue
            if not commercial:
                form.add_error(
                    "pricing_model",
                    "A free tier charges nothing: choose Commercial to price meters.",
                )
            else:
                form.add_pricing_errors(validate_pricing(spec.pricing))
        if not any(form.errors for form in self.meter_forms):
            self.meter_specs = tuple(specs)

    def _drop_errors_of_unused_fields(self) -> None:
        """A field the chosen plan and model do not use is hidden in the page and
        ignored, so a leftover bad value in it must not block the form."""
        if self.data.get("billing_plan") == BillingPlan.COMMERCIAL:
            model = self.data.get("pricing_model", "")
            unused = {
                "fixed_fee",
                "unit_price",
                "included_requests",
                "overage_price",
                "overage_block_size",
            } - MODEL_FIELDS.get(model, set())
        else:
            unused = set(PRICING_FIELDS) - {"billing_plan"}
        for name in unused:
            self._errors.pop(name, None)

    def _model(self) -> PricingModel:
        if self.cleaned_data.get("billing_plan") != BillingPlan.COMMERCIAL:
            return PricingModel.FREE
        if not self.cleaned_data.get("pricing_model"):
            return PricingModel.FREE  # only meters are charged
        return PricingModel(self.cleaned_data["pricing_model"])

    def is_valid(self) -> bool:
        valid = super().is_valid()  # runs clean(), which checks the band rows
        if valid and self._model() in BAND_MODELS:
            valid = self.bands.is_valid()
        valid = valid and self.meter_specs is not None
        return valid and not self.band_errors and self.pricing is not None

    def pricing_errors(self) -> list[str]:
        """The price's problems as sentences, for the live preview."""
        messages = []
        for name in PRICING_FIELDS:
            for error in self.errors.get(name, []):
                messages.append(f"{self.fields[name].label or name}: {error}")
        messages += self.errors.get("__all__", [])
        if self.is_bound and self.bands.is_bound:
            for number, form in enumerate(self.bands.forms, start=1):
                for name, errors in form.errors.items():
                    label = form.fields[name].label if name in form.fields else ""
                    messages += [f"Band {number} {label.lower()}: {e}" for e in errors]
        messages += self.band_errors
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
        assert self.pricing is not None, "call is_valid() first"
        price = TierPrice(
            pricing=self.pricing,
            billing_cycle=self.cleaned_data.get("billing_cycle") or BillingCycle.MONTH,
            meters=self.meter_specs or (),
        )
        trial = 0 if price.is_free else (self.cleaned_data.get("trial_days") or 0)
        return replace(price, trial_days=trial)


def _zero(value: Decimal | None) -> Decimal:
    return Decimal(0) if value is None else value


def _tier_initial(tier: Tier) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    initial: dict[str, Any] = {
        "name": tier.name,
        "description": tier.description,
        **TierLimits.of(tier).__dict__,
        "billing_plan": tier.billing_plan,
    }
    version = tier.current_version
    bands: list[dict[str, Any]] = []
    if version is not None:
        p = version.pricing()
        initial.update(
            {
                "pricing_model": "" if p.model is PricingModel.FREE else p.model.value,
                "currency": version.currency,
                "billing_cycle": version.billing_cycle,
                "trial_days": version.trial_days,
                "fixed_fee": _plain(p.fixed_fee),
                "unit_price": _plain(p.unit_price),
                "included_requests": p.included_requests,
                "overage_price": _plain(p.overage_price),
                "overage_block_size": p.overage_block_size,
            }
        )
        bands = [
            {
                "up_to": b.up_to,
                "unit_price": _plain(b.unit_price),
                "flat_fee": _plain(b.flat_fee),
            }
            for b in p.bands
        ]
    return initial, [*bands, {}]


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
