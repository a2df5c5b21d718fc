"""Writes of the publisher console: APIs, their lifecycle and offers, tiers and their
versions. Views, the admin, the demo seed and billing call these; nothing else
writes these rows.

Every service validates its input again (a form is one caller among several) and raises
`ValidationError`, with a dict keyed by field where a field is at fault. A change the
layers above act on is announced with the signals of `publisher.hooks` (the gateway
drops what it cached, billing syncs the Stripe catalog, the store ends the
subscriptions of a retired API).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from apimon import clock
from apimon.models import Organization, User
from pricing.currencies import CURRENCIES
from pricing.rating import (
    Pricing,
    PricingModel,
    split_fixed_fee,
    validate_pricing,
    with_fixed_fee,
)
from pricing.stripe_money import stripe_can_charge
from publisher import hooks
from publisher.lifecycle import target_state, transition_problem
from publisher.meters import requests_meter_create, reresolve_operation_ids
from publisher.models import (
    REQUESTS_METER,
    Api,
    ApiState,
    ApiStateChange,
    ApiTier,
    BillingCycle,
    BillingPlan,
    LifecycleAction,
    MeterPrice,
    MeterPriceBand,
    QuotaUnit,
    RateUnit,
    Tag,
    Tier,
    TierVersion,
    Visibility,
)
from publisher.validators import (
    validate_api_version,
    validate_backend_url,
    validate_context,
    validate_tags,
)

KEEP: Any = object()  # "leave this field as it is" for optional update arguments
MAX_TRIAL_DAYS = 365


def _api_changed(api: Api) -> None:
    hooks.api_changed.send(sender=Api, api=api)


def _tier_changed(tier: Tier, *, limits_changed: bool = False) -> None:
    hooks.tier_changed.send(sender=Tier, tier=tier, limits_changed=limits_changed)


# -- APIs -------------------------------------------------------------------------


def _check_api(
    *,
    organization: Organization,
    name: str,
    version: str,
    context: str,
    backend_url: str,
    visibility: str,
    tags: list[str],
    exclude_pk: int | None = None,
) -> None:
    errors: dict[str, list[ValidationError]] = {}
    checks = [
        ("version", validate_api_version, version),
        ("context", validate_context, context),
        ("backend_url", validate_backend_url, backend_url),
        ("tags", validate_tags, tags),
    ]
    if not (name or "").strip():
        errors["name"] = [ValidationError("Enter a name.")]
    for key, check, value in checks:
        try:
            check(value)
        except ValidationError as exc:
            errors.setdefault(key, []).append(exc)
    if visibility not in Visibility.values:
        errors["visibility"] = [ValidationError("Choose a visibility.")]
    taken = Api.objects.filter(
        organization=organization, context=context, version=version
    )
    if "context" not in errors and taken.exclude(pk=exclude_pk).exists():
        errors["context"] = [_context_taken(context, version)]
    if errors:
        raise ValidationError(errors)


def _context_taken(context: str, version: str) -> ValidationError:
    return ValidationError(
        f"Another API already uses /{context}/{version}/ in this organization.",
        code="unique",
    )


def _save_api(api: Api) -> None:
    # The form and _check_api look first; the constraint settles a race.
    try:
        with transaction.atomic():
            api.save()
    except IntegrityError:
        raise ValidationError(
            {"context": _context_taken(api.context, api.version)}
        ) from None


def _set_tags(api: Api, names: Iterable[str]) -> None:
    tags = []
    for name in names:
        tag, _ = Tag.objects.get_or_create(organization=api.organization, name=name)
        tags.append(tag)
    api.tags.set(tags)


@transaction.atomic
def api_create(
    *,
    organization: Organization,
    actor: User | None,
    name: str,
    version: str,
    context: str,
    backend_url: str,
    description: str = "",
    documentation: str = "",
    visibility: str = Visibility.PUBLIC,
    tags: Iterable[str] = (),
    openapi_spec: dict | None = None,
    openapi_filename: str = "",
) -> Api:
    """A new API in state CREATED (not in the store, not served by the gateway)."""
    tags = list(tags)
    _check_api(
        organization=organization,
        name=name,
        version=version,
        context=context,
        backend_url=backend_url,
        visibility=visibility,
        tags=tags,
    )
    api = Api(
        organization=organization,
        name=name.strip(),
        version=version,
        context=context,
        backend_url=backend_url,
        description=description,
        documentation=documentation,
        visibility=visibility,
        openapi_spec=openapi_spec,
        openapi_filename=openapi_filename if openapi_spec else "",
    )
    _save_api(api)
    _set_tags(api, tags)
    requests_meter_create(api=api)
    ApiStateChange.objects.create(
        api=api, action="create", to_state=ApiState.CREATED, actor=actor
    )
    return api


def api_backend_refusal_record(*, api_id: int, address: str, at: datetime) -> None:
    """The gateway refused to connect to the API's backend at `address` (the egress
    policy): kept on the API, whose page tells the publisher. One UPDATE, no history."""
    Api.objects.filter(pk=api_id).update(
        backend_refused_at=at, backend_refused_address=address[:100]
    )


@transaction.atomic
def api_update(
    *,
    api: Api,
    actor: User | None,
    name: str,
    version: str,
    context: str,
    backend_url: str,
    description: str = "",
    documentation: str = "",
    visibility: str = Visibility.PUBLIC,
    tags: Iterable[str] = (),
    openapi_spec: dict | None = KEEP,
    openapi_filename: str = KEEP,
) -> Api:
    """Edit an API. Its context and version are its address at the gateway, which
    subscribers' code calls: they are fixed once the API has left CREATED (publish
    a new version instead). `openapi_spec=None` removes the document."""
    tags = list(tags)
    if api.state != ApiState.CREATED and (
        context != api.context or version != api.version
    ):
        raise ValidationError(
            {
                "context": "The context and version of an API that has been "
                "published cannot change: create a new version instead."
            }
        )
    _check_api(
        organization=api.organization,
        name=name,
        version=version,
        context=context,
        backend_url=backend_url,
        visibility=visibility,
        tags=tags,
        exclude_pk=api.pk,
    )
    api.name = name.strip()
    api.version = version
    api.context = context
    api.backend_url = backend_url
    api.description = description
    api.documentation = documentation
    api.visibility = visibility
    # Saved through the checks above (the form resolved the host): a refusal the
    # gateway noted for the previous address is the publisher's to see no more.
    api.backend_refused_at = None
    api.backend_refused_address = ""
    if openapi_spec is not KEEP:
        api.openapi_spec = openapi_spec
        api.openapi_filename = ""
    if openapi_filename is not KEEP and api.openapi_spec:
        api.openapi_filename = openapi_filename
    _save_api(api)
    _set_tags(api, tags)
    if openapi_spec is not KEEP:
        reresolve_operation_ids(api=api)  # weighted operations typed as operationIds
    _api_changed(api)  # e.g. a new backend URL, or a name for its Stripe product
    return api


@transaction.atomic
def api_set_tiers(*, api: Api, tiers: Iterable[Tier], actor: User | None) -> None:
    """Offer `api` on exactly `tiers`. An archived tier may stay offered but cannot
    be added. Subscriptions on a tier that is no longer offered continue; the tier
    just takes no new subscribers for this API."""
    if api.state == ApiState.RETIRED:
        raise ValidationError({"tiers": "A retired API is offered on no tier."})
    tiers = list(tiers)
    current = set(api.offers.values_list("tier_id", flat=True))
    for tier in tiers:
        if tier.organization_id != api.organization_id:
            raise ValidationError({"tiers": "Choose tiers of this organization."})
        if tier.archived_at is not None and tier.pk not in current:
            raise ValidationError(
                {"tiers": f"{tier.name} is archived: it cannot be offered on an API."}
            )
    live = [t for t in tiers if t.archived_at is None]
    if api.state == ApiState.PUBLISHED and not live:
        raise ValidationError(
            {
                "tiers": "A published API must stay offered on at least one tier "
                "that is not archived (deprecate or block it instead)."
            }
        )
    wanted = {t.pk for t in tiers}
    api.offers.exclude(tier_id__in=wanted).delete()
    ApiTier.objects.bulk_create(
        [ApiTier(api=api, tier_id=pk) for pk in wanted - current]
    )
    _api_changed(api)


def api_transition(*, api: Api, action: str, actor: User | None) -> ApiStateChange:
    """Move `api` through its lifecycle (see `publisher.lifecycle`) and record it.

    RETIRED ends every live subscription of the API in the same transaction (the
    store's answer to `hooks.api_retired`: CANCELLED now, each due for its final
    invoice); BLOCKED keeps subscriptions as they are.
    """
    with transaction.atomic():
        locked = Api.objects.select_for_update().get(pk=api.pk)
        offered = locked.offers.filter(tier__archived_at=None).count()
        problem = transition_problem(locked, action, offered_tiers=offered)
        if problem:
            raise ValidationError(problem, code="invalid_transition")
        now = clock.now()
        from_state = locked.state
        locked.state = target_state(locked, action)
        if action == LifecycleAction.BLOCK:
            locked.state_before_block = from_state
        elif action == LifecycleAction.UNBLOCK:
            locked.state_before_block = ""
        locked.state_changed_at = now
        locked.save(update_fields=["state", "state_before_block", "state_changed_at"])
        note = ""
        if action == LifecycleAction.RETIRE:
            answers = hooks.api_retired.send(
                sender=Api, api=locked, actor=actor, at=now
            )
            ended = sum(n for _receiver, n in answers if isinstance(n, int))
            note = f"{ended} live subscription(s) cancelled."
        change = ApiStateChange.objects.create(
            api=locked,
            action=action,
            from_state=from_state,
            to_state=locked.state,
            actor=actor,
            at=now,
            note=note,
        )
        _api_changed(locked)  # e.g. retired: the gateway answers 410, the
        # Stripe product is archived
    api.state = locked.state
    api.state_before_block = locked.state_before_block
    api.state_changed_at = locked.state_changed_at
    return change


# -- tiers ------------------------------------------------------------------------


@dataclass(frozen=True)
class TierLimits:
    """What the gateway enforces. Changing these never makes a tier version."""

    quota_limit: int | None = None
    quota_unit: str = QuotaUnit.MONTH
    stop_on_quota_reach: bool = True
    rate_limit: int | None = None
    rate_unit: str = RateUnit.SECOND
    count_every_request: bool = False

    @classmethod
    def of(cls, tier: Tier) -> TierLimits:
        return cls(
            quota_limit=tier.quota_limit,
            quota_unit=tier.quota_unit,
            stop_on_quota_reach=tier.stop_on_quota_reach,
            rate_limit=tier.rate_limit,
            rate_unit=tier.rate_unit,
            count_every_request=tier.count_every_request,
        )


# Models a meter other than requests may be priced with: the fixed fee is the
# version's, so FLAT (a fee and nothing else) is not one of them.
METER_MODELS = (
    PricingModel.FREE,
    PricingModel.PER_UNIT,
    PricingModel.FLAT_PLUS_OVERAGE,
    PricingModel.GRADUATED,
    PricingModel.VOLUME,
)


@dataclass(frozen=True)
class MeterPriceSpec:
    """A tier version's price and quota for one meter (the quota not for
    `requests`, whose quota is the tier's limit). The pricing's
    `included_requests` holds the meter's included units, its fixed fee is 0 and
    its currency the version's."""

    meter: str
    pricing: Pricing
    quota_limit: int | None = None
    quota_unit: str = QuotaUnit.MONTH
    stop_on_quota_reach: bool = True

    @property
    def is_free(self) -> bool:
        return self.pricing.model is PricingModel.FREE

    @property
    def is_empty(self) -> bool:
        """Free and without a quota: the same as no price at all."""
        return self.is_free and self.quota_limit is None


@dataclass(frozen=True)
class TierPrice:
    """What a subscriber pays: one TierVersion's worth of fields. `pricing` is the
    fixed fee and the `requests` meter's price; `meters` the other meters' prices
    (and quotas), sorted by key, none of them empty."""

    pricing: Pricing = field(
        default_factory=lambda: Pricing(model=PricingModel.FREE, currency="usd")
    )
    billing_cycle: str = BillingCycle.MONTH
    trial_days: int = 0
    meters: tuple[MeterPriceSpec, ...] = ()

    def __post_init__(self) -> None:
        kept = tuple(sorted((m for m in self.meters if not m.is_empty), key=_key))
        object.__setattr__(self, "meters", kept)

    @property
    def is_free(self) -> bool:
        return self.pricing.model is PricingModel.FREE and all(
            m.is_free for m in self.meters
        )

    @classmethod
    def of_meters(
        cls,
        *,
        currency: str,
        fixed_fee: Decimal = Decimal(0),
        billing_cycle: str = BillingCycle.MONTH,
        trial_days: int = 0,
        meters: Iterable[MeterPriceSpec] = (),
    ) -> TierPrice:
        """A price as the tier form and the demo write it: one fixed fee and each
        meter's price, `requests` among them (its quota is the tier's, so a
        requests row's quota is not read). The requests' price joins the fee in
        `pricing` (`with_fixed_fee`), whatever its model."""
        meters = list(meters)
        requests = next((m for m in meters if m.meter == REQUESTS_METER), None)
        return cls(
            pricing=with_fixed_fee(
                requests.pricing if requests else None,
                fee=fixed_fee,
                currency=currency,
            ),
            billing_cycle=billing_cycle,
            trial_days=trial_days,
            meters=tuple(m for m in meters if m.meter != REQUESTS_METER),
        )

    def meter_specs(self) -> tuple[MeterPriceSpec, ...]:
        """Every meter's price, `requests` first when charged: the inverse of
        `of_meters` (the fee is `fixed_fee`)."""
        _fee, requests = split_fixed_fee(self.pricing)
        first = (MeterPriceSpec(meter=REQUESTS_METER, pricing=requests),)
        return (first if requests else ()) + self.meters

    @property
    def fixed_fee(self) -> Decimal:
        return split_fixed_fee(self.pricing)[0]

    def same_as(self, other: TierPrice) -> bool:
        """Equal prices; every free price without meter quotas is the same
        (currency and cycle unused)."""
        if self.is_free and other.is_free:
            return self.meters == other.meters
        return self == other

    @classmethod
    def of(cls, version: TierVersion) -> TierPrice:
        rows = list(version.meter_prices.prefetch_related("bands"))
        return cls(
            pricing=version.pricing(rows),
            billing_cycle=version.billing_cycle,
            trial_days=version.trial_days,
            meters=tuple(
                MeterPriceSpec(
                    meter=p.meter,
                    pricing=p.pricing(version.currency),
                    quota_limit=p.quota_limit,
                    quota_unit=p.quota_unit,
                    stop_on_quota_reach=p.stop_on_quota_reach,
                )
                for p in version.other_meter_prices(rows)
            ),
        )


def _key(spec: MeterPriceSpec) -> str:
    return spec.meter


@dataclass(frozen=True)
class TierUpdate:
    tier: Tier
    # "unchanged", "edited" (the unused current version changed in place) or
    # "new_version"
    price_outcome: str
    limits_changed: bool


def currency_problem(pricing: Pricing) -> str | None:
    """Why a price cannot be sold in its currency, or None. A FREE price charges
    nothing, so its currency does not matter; every other price is charged through
    Stripe, so it must be in a currency Stripe can charge (IQD and LYD are not)."""
    if pricing.model is PricingModel.FREE or stripe_can_charge(pricing.currency):
        return None
    code = str(pricing.currency)
    known = CURRENCIES.get(code.lower())
    name = f"{code.upper()} ({known.name})" if known else code.upper()
    return (
        f"Stripe cannot charge in {name}, so subscribers could never be invoiced "
        "for this tier. Choose another currency, or make the tier free."
    )


def _check_tier(
    *, organization: Organization, name: str, limits: TierLimits, price: TierPrice
) -> None:
    errors: dict[str, list[str]] = {}
    if not (name or "").strip():
        errors["name"] = ["Enter a name."]
    if limits.quota_unit not in QuotaUnit.values:
        errors["quota_unit"] = ["Choose a quota unit."]
    if limits.rate_unit not in RateUnit.values:
        errors["rate_unit"] = ["Choose a rate unit."]
    for key in ("quota_limit", "rate_limit"):
        value = getattr(limits, key)
        if value is not None and value < 1:
            errors[key] = ["Enter 1 or more, or leave it empty for no limit."]
    if price.billing_cycle not in BillingCycle.values:
        errors["billing_cycle"] = ["Choose a billing cycle."]
    if not 0 <= price.trial_days <= MAX_TRIAL_DAYS:
        errors["trial_days"] = [f"Enter 0 to {MAX_TRIAL_DAYS} days."]
    if price.is_free and price.trial_days:
        errors["trial_days"] = ["A free tier has no trial."]
    for key, message in validate_pricing(price.pricing):
        errors.setdefault(key, []).append(message)
    for spec in price.meters:
        for key, message in _meter_price_errors(spec, price):
            errors.setdefault(f"meter-{spec.meter}-{key}", []).append(message)
    for pricing in (price.pricing, *(m.pricing for m in price.meters)):
        if "currency" not in errors and (problem := currency_problem(pricing)):
            errors["currency"] = [problem]
    if errors:
        raise ValidationError(errors)


def _meter_price_errors(
    spec: MeterPriceSpec, price: TierPrice
) -> list[tuple[str, str]]:
    p = spec.pricing
    if spec.meter == REQUESTS_METER:
        return [("pricing_model", "The requests' price is the tier's own price.")]
    if p.model not in METER_MODELS:
        return [("pricing_model", "Choose free, per unit, overage or bands.")]
    errors = []
    if p.fixed_fee:
        errors.append(("pricing_model", "The tier's fixed fee is the only fixed fee."))
    if p.model is not PricingModel.FREE and p.currency != price.pricing.currency:
        errors.append(("pricing_model", "A meter is priced in the tier's currency."))
    if spec.quota_unit not in QuotaUnit.values:
        errors.append(("quota_unit", "Choose a quota unit."))
    if spec.quota_limit is not None and spec.quota_limit < 1:
        errors.append(("quota_limit", "Enter 1 or more, or leave it empty."))
    if p.model is not PricingModel.FREE:
        errors += validate_pricing(p)
    return errors


def _save_tier(tier: Tier) -> None:
    try:
        with transaction.atomic():
            tier.save()
    except IntegrityError:
        raise ValidationError(
            {"name": f"This organization already has a tier named “{tier.name}”."}
        ) from None


def _apply(tier: Tier, *, name: str, description: str, limits: TierLimits) -> None:
    tier.name = name.strip()
    tier.description = description
    for key, value in limits.__dict__.items():
        setattr(tier, key, value)


def _write_price(
    version: TierVersion, price: TierPrice, *, replace_rows: bool = False
) -> None:
    p = price.pricing
    version.currency = p.currency
    version.billing_cycle = price.billing_cycle
    version.trial_days = price.trial_days
    version.fixed_fee = price.fixed_fee
    version.charges_meters = any(not m.is_free for m in price.meters)
    version.save()
    if replace_rows:
        version.meter_prices.all().delete()
    for spec in price.meter_specs():
        mp = spec.pricing
        row = MeterPrice.objects.create(
            version=version,
            meter=spec.meter,
            pricing_model=mp.model.value,
            unit_price=mp.unit_price,
            included_units=mp.included_requests,
            overage_price=mp.overage_price,
            overage_block_size=mp.overage_block_size,
            quota_limit=spec.quota_limit,
            quota_unit=spec.quota_unit,
            stop_on_quota_reach=spec.stop_on_quota_reach,
        )
        MeterPriceBand.objects.bulk_create(
            MeterPriceBand(
                price=row,
                position=i,
                up_to=band.up_to,
                unit_price=band.unit_price,
                flat_fee=band.flat_fee,
            )
            for i, band in enumerate(mp.bands)
        )


def _plan(price: TierPrice) -> str:
    return BillingPlan.FREE if price.is_free else BillingPlan.COMMERCIAL


@transaction.atomic
def tier_create(
    *,
    organization: Organization,
    actor: User | None,
    name: str,
    description: str = "",
    limits: TierLimits | None = None,
    price: TierPrice | None = None,
) -> Tier:
    """A tier with its first version. The billing plan follows the pricing model:
    FREE pricing is a FREE tier, any other model a COMMERCIAL one."""
    limits = limits or TierLimits()
    price = price or TierPrice()
    _check_tier(organization=organization, name=name, limits=limits, price=price)
    tier = Tier(organization=organization, billing_plan=_plan(price))
    _apply(tier, name=name, description=description, limits=limits)
    _save_tier(tier)
    version = TierVersion(tier=tier, number=1, created_by=actor)
    _write_price(version, price)
    tier.current_version = version
    tier.save(update_fields=["current_version"])
    return tier


def version_in_use(version: TierVersion) -> bool:
    """Whether any subscription, in any state, is or will be on `version` (the
    store knows). Such a version is immutable: invoices (even a cancelled
    subscription's final one) are rated with it."""
    return hooks.version_in_use(version)


@transaction.atomic
def tier_update(
    *,
    tier: Tier,
    actor: User | None,
    name: str,
    description: str = "",
    limits: TierLimits,
    price: TierPrice,
    migrate_existing: bool = False,
) -> TierUpdate:
    """Edit a tier: its name, limits and price.

    Limits apply at once to every subscriber. A price change makes a new version
    (number + 1) that new subscriptions get; `migrate_existing` records whether the
    existing subscribers move to it at their next period (billing asks
    `tier_version_for_next_period`). Only while no subscription has ever used the
    current version is it edited in place instead: nobody was sold that price yet.
    """
    locked = Tier.objects.select_for_update().get(pk=tier.pk)
    _check_tier(organization=locked.organization, name=name, limits=limits, price=price)
    limits_changed = TierLimits.of(locked) != limits
    _apply(locked, name=name, description=description, limits=limits)

    current = locked.current_version
    outcome = "unchanged"
    if current is None or not TierPrice.of(current).same_as(price):
        if current is not None and not version_in_use(current):
            current.migrate_existing = migrate_existing and current.number > 1
            _write_price(current, price, replace_rows=True)
            outcome = "edited"
        else:
            last = locked.versions.aggregate(n=Max("number"))["n"] or 0
            current = TierVersion(
                tier=locked,
                number=last + 1,
                created_by=actor,
                migrate_existing=migrate_existing,
            )
            _write_price(current, price)
            locked.current_version = current
            outcome = "new_version"
    locked.billing_plan = _plan(price)
    _save_tier(locked)
    _tier_changed(locked, limits_changed=limits_changed)  # or a new or edited price
    tier.refresh_from_db()
    return TierUpdate(tier=locked, price_outcome=outcome, limits_changed=limits_changed)


def tier_archive(*, tier: Tier, actor: User | None) -> Tier:
    """An archived tier is offered to no new subscriber and cannot be added to an
    API; its existing subscriptions continue unchanged."""
    if tier.archived_at is None:
        tier.archived_at = timezone.now()
        tier.save(update_fields=["archived_at", "updated_at"])
        _tier_changed(tier)
    return tier


def tier_unarchive(*, tier: Tier, actor: User | None) -> Tier:
    if tier.archived_at is not None:
        tier.archived_at = None
        tier.save(update_fields=["archived_at", "updated_at"])
        _tier_changed(tier)
    return tier


def tier_version_for_next_period(*, tier_id: int, version: TierVersion) -> TierVersion:
    """The version a subscription of tier `tier_id`, now on `version`, is rated with
    from its next period on (billing asks when it opens a period).

    The newest version of the tier that is newer than the subscription's own and was
    made with "move existing subscribers" ticked; else its own version. With v2
    (move) and v3 (don't move) after a subscriber's v1, that subscriber goes to v2:
    v3's choice keeps existing subscribers where they were promised to be.
    """
    newer = (
        TierVersion.objects.filter(
            tier_id=tier_id,
            number__gt=version.number if version.tier_id == tier_id else 0,
            migrate_existing=True,
        )
        .order_by("-number")
        .first()
    )
    return newer or version
