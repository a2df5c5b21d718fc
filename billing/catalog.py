"""The catalog apimon keeps on an organization's connected Stripe account.

One Stripe Product per API that is offered on at least one non-archived COMMERCIAL
tier, and under it the Prices of each COMMERCIAL tier version that is current (on a
tier offered on that API) or in use by a live subscription of that API: one for the
version's fixed fee and one per meter of the API that the version prices (requests,
tokens, …). Tiers belong to the organization but a Price belongs to one Product, so
a tier offered on three APIs has its Prices three times, under each API's Product
(docs/decisions.md, "Catalog").

apimon rates usage itself and invoices with invoice items, so these Prices are the
catalog Stripe shows (Dashboard, invoices that name them), not what computes amounts.
`version_prices` maps each pricing model to the nearest honest Stripe Price.

A tier version in a currency Stripe cannot charge (`stripe_can_charge`: IQD, LYD;
the tier form refuses them, but a tier may predate that rule) gets no Price: the sync
skips it and lists it in `SyncResult.not_chargeable`, and the Monetization pages
list such tiers (`versions_stripe_cannot_charge`) so the publisher can reprice them.

Every object is mirrored in `CatalogObject`; a run compares the wanted catalog with
the mirror, so a second run creates nothing. Creates carry idempotency keys derived
from the rows and the content, so a retried run never makes a duplicate either.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q, prefetch_related_objects
from django.utils import timezone

from apimon import stripe_client as sc
from apimon.models import Organization
from apimon.payment_errors import StripeInvalidRequest
from billing.models import (
    CatalogDrift,
    CatalogKind,
    CatalogObject,
    StripeConnection,
)
from pricing.currencies import minor_units, to_minor
from pricing.rating import Pricing
from pricing.rating import PricingModel as Model
from pricing.stripe_money import stripe_can_charge
from publisher.meters import meters_of
from publisher.models import (
    Api,
    ApiState,
    ApiTier,
    BillingPlan,
    Meter,
    PricingModel,
    TierVersion,
    version_charges,
)
from store.models import Subscription, SubscriptionState

log = logging.getLogger(__name__)

# Stripe allows up to 12 decimal places in `unit_amount_decimal`.
STRIPE_MAX_DECIMALS = 12


class CatalogError(Exception):
    """The catalog cannot be synced (no connected account, …)."""


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    reactivated: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    products: int = 0
    prices: int = 0
    # Tier versions left without a Price: Stripe cannot charge their currency.
    not_chargeable: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.reactivated or self.updated or self.archived)

    @property
    def not_chargeable_note(self) -> str:
        """A sentence about the tier versions left without a Price, or ""."""
        if not self.not_chargeable:
            return ""
        return (
            f"No Stripe price for {', '.join(self.not_chargeable)}: Stripe cannot "
            "charge that currency. Change the tier's currency to sell it."
        )


# --- What apimon asks Stripe for ------------------------------------------------------


def minor_decimal(amount: Decimal, currency: str) -> str:
    """A major-unit amount as Stripe's decimal minor units: $0.0004 → "0.04" (cents),
    $29 → "2900", ¥0.5 → "0.5". Exact: no rounding, at most 12 decimals."""
    value = Decimal(amount).scaleb(minor_units(currency))
    text = format(value.normalize(), "f")
    if "." in text and len(text.split(".")[1]) > STRIPE_MAX_DECIMALS:
        raise CatalogError(
            f"{amount} {currency.upper()} has more than {STRIPE_MAX_DECIMALS} "
            "decimals in minor units"
        )
    return text


def product_params(api: Api) -> dict[str, Any]:
    params: dict[str, Any] = {
        "name": f"{api.name} {api.version}",
        "metadata": {
            "apimon_org_id": str(api.organization_id),
            "apimon_api_id": str(api.pk),
        },
    }
    if api.description.strip():
        # Stripe shows a product's description on invoices; keep it short.
        params["description"] = api.description.strip()[:500]
    return params


FIXED_FEE = ""  # the component of a version's fixed fee (`CatalogObject.meter`)


def version_prices(
    version: TierVersion, *, api: Api, product: str, meters: dict[str, Meter]
) -> dict[str, dict[str, Any]]:
    """The Stripe Prices of a commercial tier version under an API's Product, by
    what each charges: ``FIXED_FEE`` for the fixed fee (when there is one), then one
    per meter the version prices and the API has (``meters``: the API's meters by
    key), `requests` included. A meter the version prices that the API lacks is not
    sold on that API, so it gets no Price there. Empty: the version charges nothing.

    Every price is recurring and `licensed` with the tier's billing cycle: metered
    prices need a Billing Meter in this API version, and apimon meters and rates
    usage itself. A meter's Price is per unit of the meter (the quantity of its
    invoice line is the number of units), whatever the meter's display scale.

    - the fixed fee: its amount per period;
    - PER_UNIT: the price per unit (`unit_amount_decimal`, exact to 12 decimals);
    - GRADUATED / VOLUME: `billing_scheme=tiered` with `tiers_mode`, the bands as
      tiers (`up_to` inclusive as in Stripe, the last one `inf`), band flat fees as
      `flat_amount` (whole minor units, rounded half-up);
    - FLAT_PLUS_OVERAGE: the overage price per block, with `transform_quantity`
      dividing the units above the included ones by the block size and rounding up
      (a partial block counts as a whole one); the included units are in the
      metadata, as Stripe cannot say "the first N are free" in the same Price.
    """
    currency = version.currency.lower()
    if not stripe_can_charge(currency):
        raise CatalogError(f"Stripe cannot charge {currency.upper()}: {version}")
    prices: dict[str, dict[str, Any]] = {}
    if version.fixed_fee:
        params = _price_base(version, api=api, product=product)
        params["nickname"] = _nickname(version, "fixed fee")
        params["unit_amount_decimal"] = minor_decimal(version.fixed_fee, currency)
        params["metadata"]["apimon_charge"] = "fixed_fee"
        prices[FIXED_FEE] = params
    for row, meter in _sold_meter_prices(version, meters):
        prices[row.meter] = meter_price_params(
            version, row.pricing(currency), meter, api=api, product=product
        )
    return prices


def meter_price_params(
    version: TierVersion, pricing: Pricing, meter: Meter, *, api: Api, product: str
) -> dict[str, Any]:
    """The Stripe Price of one meter's price in a tier version (`version_prices`)."""
    currency = pricing.currency.lower()
    model = Model(pricing.model)
    params = _price_base(version, api=api, product=product)
    params["nickname"] = _nickname(version, meter.display_name)
    metadata = params["metadata"]
    metadata.update(
        {
            "apimon_charge": "meter",
            "apimon_meter": meter.key,
            "apimon_meter_name": meter.display_name,
            "apimon_unit": meter.unit_label,
            "apimon_pricing_model": model.value,
        }
    )
    if model is Model.PER_UNIT:
        params["unit_amount_decimal"] = minor_decimal(pricing.unit_price, currency)
    elif model is Model.FLAT_PLUS_OVERAGE:
        params["unit_amount_decimal"] = minor_decimal(pricing.overage_price, currency)
        params["transform_quantity"] = {
            "divide_by": pricing.overage_block_size,
            "round": "up",
        }
        metadata["apimon_included_units"] = str(pricing.included_requests)
    elif model in (Model.GRADUATED, Model.VOLUME):
        if not pricing.bands:
            raise CatalogError(f"{version} has no price bands for {meter.key}")
        params["billing_scheme"] = "tiered"
        params["tiers_mode"] = "graduated" if model is Model.GRADUATED else "volume"
        params["tiers"] = [
            {
                "up_to": "inf" if band.up_to is None else band.up_to,
                "unit_amount_decimal": minor_decimal(band.unit_price, currency),
                "flat_amount": to_minor(band.flat_fee, currency),
            }
            for band in pricing.bands
        ]
    else:
        raise CatalogError(f"{version} charges nothing for {meter.key}")
    return params


def _price_base(version: TierVersion, *, api: Api, product: str) -> dict[str, Any]:
    tier = version.tier
    recurring: dict[str, Any] = {
        "interval": version.billing_cycle,
        "interval_count": 1,
        "usage_type": "licensed",
    }
    if version.trial_days:
        recurring["trial_period_days"] = version.trial_days
    return {
        "product": product,
        "currency": version.currency.lower(),
        "recurring": recurring,
        "metadata": {
            "apimon_org_id": str(tier.organization_id),
            "apimon_api_id": str(api.pk),
            "apimon_tier_id": str(tier.pk),
            "apimon_tier_version_id": str(version.pk),
        },
    }


def _nickname(version: TierVersion, what: str) -> str:
    return f"{version.tier.name} v{version.number} · {what}"[:250]


def _plain(value: Decimal) -> str:
    return format(Decimal(value).normalize(), "f")


# What a Price update can change; everything else about a Stripe price is fixed.
PRICE_LABELS = ("nickname", "metadata")


def fingerprint(params: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(params, sort_keys=True, default=str).encode()
    ).hexdigest()


def price_fingerprint(params: dict[str, Any]) -> str:
    """Only what makes a different price: a renamed tier relabels its Price."""
    return fingerprint({k: v for k, v in params.items() if k not in PRICE_LABELS})


# --- What should be on the account ----------------------------------------------------


@dataclass
class WantedProduct:
    """An API that gets a Product: its meters by key and the tier versions that
    charge something on it."""

    api: Api
    meters: dict[str, Meter]
    versions: list[TierVersion]


def wanted_catalog(organization: Organization) -> list[WantedProduct]:
    """Each API that gets a Product, with the tier versions that get Prices."""
    apis = list(
        Api.objects.filter(organization=organization)
        .exclude(state=ApiState.RETIRED)
        .prefetch_related("meters")
        .order_by("pk")
    )
    offers = (
        ApiTier.objects.filter(api__in=apis, tier__billing_plan=BillingPlan.COMMERCIAL)
        .select_related("tier", "tier__current_version")
        .order_by("tier__pk")
    )
    current: dict[int, list[TierVersion]] = {}
    for offer in offers:
        version = offer.tier.current_version
        if offer.tier.archived_at is None and version is not None:
            current.setdefault(offer.api_id, []).append(version)
    in_use: dict[int, list[TierVersion]] = {}
    subscriptions = (
        Subscription.objects.filter(api__in=apis)
        .exclude(state=SubscriptionState.CANCELLED)
        .select_related("tier_version__tier", "scheduled_tier_version__tier")
    )
    for subscription in subscriptions:
        # Its own version, and the one it moves to at its next period.
        for version in (subscription.tier_version, subscription.scheduled_tier_version):
            if version is not None:
                in_use.setdefault(subscription.api_id, []).append(version)
    prefetch_related_objects(
        [v for versions in (*current.values(), *in_use.values()) for v in versions],
        "meter_prices__bands",
    )
    result = []
    for api in apis:
        if api.pk not in current:
            continue  # not offered on a live commercial tier: no product
        meters = {meter.key: meter for meter in meters_of(api)}
        versions: dict[int, TierVersion] = {}
        for version in current[api.pk] + in_use.get(api.pk, []):
            if _charges_on(version, meters):
                versions.setdefault(version.pk, version)
        result.append(
            WantedProduct(api, meters, sorted(versions.values(), key=lambda v: v.pk))
        )
    return result


def _charges_on(version: TierVersion, meters: dict[str, Meter]) -> bool:
    """Whether the version charges anything on an API with these meters."""
    return bool(version.fixed_fee) or any(_sold_meter_prices(version, meters))


def _sold_meter_prices(version: TierVersion, meters: dict[str, Meter]):
    """(price row, meter) of each meter the version charges that the API has."""
    for row in version.meter_prices.all():
        meter = meters.get(row.meter)
        if meter is not None and row.pricing_model != PricingModel.FREE:
            yield row, meter


def versions_stripe_cannot_charge(organization: Organization) -> list[TierVersion]:
    """The organization's priced tier versions that are for sale or in use (the
    current version of an unarchived commercial tier, or a version a live
    subscription is on or moves to) in a currency Stripe cannot charge. They have no
    Stripe Price and their invoices are refused at the push."""
    live = Subscription.objects.filter(organization=organization).exclude(
        state=SubscriptionState.CANCELLED
    )
    versions = (
        TierVersion.objects.filter(tier__organization=organization)
        .filter(version_charges())
        .filter(
            Q(
                tier__current_version=F("pk"),
                tier__archived_at=None,
                tier__billing_plan=BillingPlan.COMMERCIAL,
            )
            | Q(pk__in=live.values("tier_version"))
            | Q(pk__in=live.values("scheduled_tier_version"))
        )
    )
    refused = {
        code
        for code in versions.values_list("currency", flat=True).distinct()
        if not stripe_can_charge(code)
    }
    if not refused:
        return []
    return list(
        versions.filter(currency__in=refused)
        .select_related("tier")
        .order_by("tier__name", "number")
    )


def not_chargeable_label(version: TierVersion) -> str:
    return f"{version.tier.name} v{version.number} ({version.currency.upper()})"


def connected_account(organization: Organization) -> StripeConnection | None:
    """The organization's connected Stripe account, if any."""
    return StripeConnection.objects.filter(
        organization=organization, disconnected_at__isnull=True
    ).first()


def active_connection(organization: Organization) -> StripeConnection:
    connection = connected_account(organization)
    if connection is None:
        raise CatalogError("This organization has no connected Stripe account.")
    return connection


# --- Sync -------------------------------------------------------------------------------


def catalog_sync(*, organization: Organization) -> SyncResult:
    """Make the connected account's catalog match apimon's APIs and tiers: create
    what is missing, replace a Price whose tier version was edited in place, archive
    what apimon no longer sells. Objects changed by hand in Stripe are left alone:
    reconciliation reports them (billing.reconcile)."""
    connection = active_connection(organization)
    sync = _Sync(organization, connection)
    keep: set[int] = set()
    for wanted in wanted_catalog(organization):
        api = wanted.api
        product = sync.ensure_product(api)
        keep.add(product.pk)
        for version in wanted.versions:
            if not stripe_can_charge(version.currency):
                label = not_chargeable_label(version)
                if label not in sync.result.not_chargeable:
                    sync.result.not_chargeable.append(label)
                continue
            prices = version_prices(
                version, api=api, product=product.stripe_id, meters=wanted.meters
            )
            for charge, params in prices.items():
                keep.add(sync.ensure_price(api, version, charge, params).pk)
    for obj in sync.live().exclude(pk__in=keep).order_by("kind"):  # prices first
        sync.retire(obj, reason="No longer sold by apimon")
    sync.result.products = sync.live().filter(kind=CatalogKind.PRODUCT).count()
    sync.result.prices = sync.live().filter(kind=CatalogKind.PRICE).count()
    return sync.result


class _Sync:
    def __init__(self, organization: Organization, connection: StripeConnection):
        self.organization = organization
        self.account = connection.account_id
        self.livemode = connection.livemode
        self.client = sc.get_client()
        self.result = SyncResult()

    def options(self, *key: object) -> dict[str, Any]:
        return sc.request_options(
            account=self.account,
            idempotency_key=sc.idempotency_key(*key) if key else None,
        )

    def live(self):
        return CatalogObject.objects.filter(
            organization=self.organization,
            account_id=self.account,
            retired_at__isnull=True,
        )

    def _rows(
        self,
        kind: str,
        api: Api,
        version: TierVersion | None = None,
        charge: str = FIXED_FEE,
    ):
        return CatalogObject.objects.filter(
            organization=self.organization,
            account_id=self.account,
            kind=kind,
            api=api,
            tier_version=version,
            meter=charge,
        )

    # Products -------------------------------------------------------------------

    def ensure_product(self, api: Api) -> CatalogObject:
        params = product_params(api)
        fp = fingerprint(params)
        obj = self._rows(CatalogKind.PRODUCT, api).filter(retired_at=None).first()
        if obj is not None:
            if obj.fingerprint != fp:
                # Products are mutable: a renamed API renames its product.
                self.client.v1.products.update(
                    obj.stripe_id, params, self.options("product", obj.stripe_id, fp)
                )
                self._save(obj, params, fp)
                self.result.updated.append(obj.stripe_id)
            return obj
        retired = self._rows(CatalogKind.PRODUCT, api).order_by("-retired_at").first()
        if retired is not None and self._reactivate(
            retired, {**params, "active": True}, fp
        ):
            return retired
        n = self._rows(CatalogKind.PRODUCT, api).count()
        product = self.client.v1.products.create(
            params, self.options("product", "api", api.pk, "n", n, fp[:16])
        )
        return self._insert(
            CatalogKind.PRODUCT, product.id, api=api, params=params, fp=fp
        )

    # Prices ---------------------------------------------------------------------

    def ensure_price(
        self, api: Api, version: TierVersion, charge: str, params: dict[str, Any]
    ) -> CatalogObject:
        """The live Price of what ``charge`` names (`version_prices`) in a version
        under the API's Product, created or replaced to match ``params``."""
        product = params["product"]
        fp = price_fingerprint(params)
        labels = {key: params[key] for key in PRICE_LABELS}
        rows = self._rows(CatalogKind.PRICE, api, version, charge)
        obj = rows.filter(retired_at=None).first()
        if obj is not None:
            if obj.fingerprint == fp:
                if any(obj.synced_data.get(k) != v for k, v in labels.items()):
                    self.client.v1.prices.update(
                        obj.stripe_id,
                        labels,
                        self.options("price", obj.stripe_id, fingerprint(labels)[:16]),
                    )
                    self._save(obj, params, fp)
                    self.result.updated.append(obj.stripe_id)
                return obj
            # The version was edited before anyone subscribed, or its product was
            # replaced: Stripe prices are immutable, so archive and create anew.
            self.retire(obj, reason="Replaced: the tier version's price changed")
        same = rows.filter(fingerprint=fp).order_by("-retired_at").first()
        if same is not None and self._reactivate(same, {"active": True, **labels}, fp):
            self._save(same, params, fp)
            return same
        n = rows.count()
        price = self.client.v1.prices.create(
            params,
            self.options(
                "price", "tierversion", version.pk, "charge", charge or "fee",
                "product", product, "n", n, fp[:16],
            ),
        )  # fmt: skip
        return self._insert(
            CatalogKind.PRICE,
            price.id,
            api=api,
            version=version,
            charge=charge,
            product=product,
            params=params,
            fp=fp,
        )

    # Shared ---------------------------------------------------------------------

    def _insert(
        self,
        kind: str,
        stripe_id: str,
        *,
        api: Api,
        params: dict[str, Any],
        fp: str,
        version: TierVersion | None = None,
        charge: str = FIXED_FEE,
        product: str = "",
    ) -> CatalogObject:
        try:
            with transaction.atomic():
                obj = CatalogObject.objects.create(
                    organization=self.organization,
                    account_id=self.account,
                    kind=kind,
                    stripe_id=stripe_id,
                    api=api,
                    tier_version=version,
                    meter=charge,
                    product_stripe_id=product,
                    livemode=self.livemode,
                    fingerprint=fp,
                    synced_data=_jsonable(params),
                )
        except IntegrityError:
            # Another run created the same object (the idempotency key made Stripe
            # answer both with it) and recorded it first.
            return CatalogObject.objects.get(stripe_id=stripe_id)
        self.result.created.append(stripe_id)
        return obj

    def _save(self, obj: CatalogObject, params: dict[str, Any], fp: str) -> None:
        obj.synced_data = _jsonable(params)
        obj.fingerprint = fp
        obj.save(update_fields=["synced_data", "fingerprint", "updated_at"])

    def _reactivate(self, obj: CatalogObject, params: dict[str, Any], fp: str) -> bool:
        resource = stripe_resource(self.client, obj.kind)
        try:
            resource.update(
                obj.stripe_id, params, self.options(obj.kind, obj.stripe_id, "activate")
            )
        except StripeInvalidRequest:
            return False  # gone from Stripe: create a new one
        try:
            with transaction.atomic():
                obj.retired_at = None
                obj.active = True
                obj.save(update_fields=["retired_at", "active", "updated_at"])
        except IntegrityError:
            return False
        if obj.kind == CatalogKind.PRODUCT:
            self._save(obj, {k: v for k, v in params.items() if k != "active"}, fp)
        self.result.reactivated.append(obj.stripe_id)
        return True

    def retire(self, obj: CatalogObject, *, reason: str) -> None:
        """Archive on Stripe (`active=false`) and stop tracking it as live."""
        resource = stripe_resource(self.client, obj.kind)
        try:
            resource.update(
                obj.stripe_id,
                {"active": False},
                self.options(obj.kind, obj.stripe_id, "archive", obj.fingerprint[:16]),
            )
        except StripeInvalidRequest as exc:
            # Deleted by hand in Stripe: nothing left to archive.
            log.info("%s %s not archived: %s", obj.kind, obj.stripe_id, exc)
        now = timezone.now()
        obj.retired_at = now
        obj.active = False
        obj.save(update_fields=["retired_at", "active", "updated_at"])
        CatalogDrift.objects.filter(catalog_object=obj, resolved_at=None).update(
            resolved_at=now, resolution=f"Retired by apimon: {reason}"
        )
        self.result.archived.append(obj.stripe_id)


def stripe_resource(client, kind: str):
    """The Stripe client's service for a catalog object of `kind`."""
    return client.v1.products if kind == CatalogKind.PRODUCT else client.v1.prices


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, default=str))


# --- After changes in the publisher console -----------------------------------------


def sync_wanted(organization_id: int) -> bool:
    """Only organizations with monetization on keep their catalog in sync."""
    return StripeConnection.objects.filter(
        Q(organization_id=organization_id)
        & Q(disconnected_at__isnull=True)
        & Q(monetization_enabled=True)
    ).exists()


def schedule_sync(organization_id: int) -> None:
    """Sync the organization's catalog in Celery once the current transaction
    commits. Publisher services call it after a change that alters what is sold: a
    new tier version, an API offered on a tier (or no longer), a retired API, an
    archived tier. Does nothing while monetization is off."""
    if not sync_wanted(organization_id):
        return
    from billing.tasks import sync_catalog

    transaction.on_commit(lambda: sync_catalog.delay(organization_id), robust=True)
