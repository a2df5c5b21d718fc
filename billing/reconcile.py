"""Reconciliation: compare the Products and Prices apimon created on each connected
account with its own records, and record drift instead of silently diverging.

The seed warns publishers not to edit Stripe objects by hand; this is the check behind
that warning. A Product or Price can drift three ways:

- deleted: Stripe no longer has it (a product deleted in the Dashboard);
- archived: `active=false` in Stripe while apimon still sells it;
- edited: a field apimon set differs (amounts, recurring terms, tiers, the product it
  belongs to, or the `apimon_*` metadata that points back to apimon's rows, or the
  product's name).

Drift is recorded once per object and kind while open (`CatalogDrift`), refreshed on
each run, resolved when Stripe matches again or when the owner repairs it.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from apimon import stripe_client as sc
from apimon.models import Organization
from apimon.payment_errors import StripeInvalidRequest
from billing.catalog import (
    CatalogError,
    active_connection,
    catalog_sync,
    stripe_resource,
)
from billing.models import (
    CatalogDrift,
    CatalogKind,
    CatalogObject,
    DriftKind,
    StripeConnection,
)

log = logging.getLogger(__name__)

PAGE = 100


@dataclass
class ReconcileResult:
    checked: int = 0
    new_drift: int = 0
    open_drift: int = 0
    resolved: int = 0


def organizations_to_reconcile() -> list[int]:
    """Organizations with a connected account on which apimon created objects."""
    live_objects = CatalogObject.objects.filter(
        organization_id=OuterRef("organization_id"),
        account_id=OuterRef("account_id"),
        retired_at=None,
    )
    return sorted(
        set(
            StripeConnection.objects.filter(
                Exists(live_objects), disconnected_at__isnull=True
            ).values_list("organization_id", flat=True)
        )
    )


def catalog_reconcile(*, organization: Organization) -> ReconcileResult:
    """Check every live catalog object of the organization's connected account."""
    result = ReconcileResult()
    try:
        connection = active_connection(organization)
    except CatalogError:
        return result
    account = connection.account_id
    rows = list(
        CatalogObject.objects.filter(
            organization=organization, account_id=account, retired_at=None
        ).order_by("pk")
    )
    if not rows:
        return result
    client = sc.get_client()
    options = sc.request_options(account=account)
    remote = {
        CatalogKind.PRODUCT: _list_all(client.v1.products.list, {}, options),
        CatalogKind.PRICE: _list_all(
            client.v1.prices.list, {"expand": ["data.tiers"]}, options
        ),
    }
    now = timezone.now()
    for row in rows:
        found = remote[row.kind].get(row.stripe_id)
        if found is None:
            found = _retrieve(client, row, options)
        findings = compare(row, found)
        result.checked += 1
        for kind, detail in findings.items():
            created = _record(row, kind, detail, now)
            result.new_drift += int(created)
        result.resolved += (
            CatalogDrift.objects.filter(catalog_object=row, resolved_at=None)
            .exclude(kind__in=list(findings))
            .update(resolved_at=now, resolution="Stripe matches apimon again")
        )
        row.last_checked_at = now
        row.save(update_fields=["last_checked_at"])
    result.open_drift = CatalogDrift.objects.filter(
        organization=organization, resolved_at=None
    ).count()
    return result


def _list_all(method, params: dict[str, Any], options: dict[str, Any]) -> dict:
    """Every object of a list endpoint, page by page with `starting_after`."""
    objects: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        page_params = {**params, "limit": PAGE}
        if cursor:
            page_params["starting_after"] = cursor
        page = method(page_params, options)
        for obj in page.data:
            objects[obj.id] = obj.to_dict()
        if not page.has_more or not page.data:
            return objects
        cursor = page.data[-1].id


def _retrieve(client, row: CatalogObject, options) -> dict[str, Any] | None:
    try:
        if row.kind == CatalogKind.PRODUCT:
            obj = client.v1.products.retrieve(row.stripe_id, {}, options)
        else:
            obj = client.v1.prices.retrieve(
                row.stripe_id, {"expand": ["tiers"]}, options
            )
    except StripeInvalidRequest as exc:
        if exc.http_status == 404:
            return None
        raise
    data = obj.to_dict()
    return None if data.get("deleted") else data


# --- Comparison ---------------------------------------------------------------------


def compare(row: CatalogObject, remote: dict[str, Any] | None) -> dict[str, str]:
    """The drift of one object: {kind: what a person should read}."""
    label = f"{row.get_kind_display()} {row.stripe_id}"
    if remote is None or remote.get("deleted"):
        return {
            DriftKind.DELETED: f"{label} no longer exists on {row.account_id}: "
            "it was deleted in Stripe."
        }
    findings: dict[str, str] = {}
    if row.active and remote.get("active") is False:
        findings[DriftKind.ARCHIVED] = (
            f"{label} was archived in Stripe, but apimon still sells it."
        )
    differences = _differences(row.kind, row.synced_data, remote)
    if differences:
        findings[DriftKind.EDITED] = f"{label} was edited in Stripe: " + "; ".join(
            differences
        )
    return findings


def _differences(kind: str, wanted: dict[str, Any], remote: dict[str, Any]) -> list:
    diffs: list[str] = []

    def check(name: str, expected: Any, actual: Any) -> None:
        if _norm(expected) != _norm(actual):
            diffs.append(f"{name} is {_show(actual)}, apimon expects {_show(expected)}")

    metadata = remote.get("metadata") or {}
    for key, value in (wanted.get("metadata") or {}).items():
        check(f"metadata.{key}", value, metadata.get(key))
    if kind == CatalogKind.PRODUCT:
        check("name", wanted.get("name"), remote.get("name"))
        return diffs
    check("product", wanted.get("product"), sc.object_id(remote.get("product")))
    check("currency", wanted.get("currency"), remote.get("currency"))
    check(
        "billing_scheme",
        wanted.get("billing_scheme", "per_unit"),
        remote.get("billing_scheme"),
    )
    if "unit_amount_decimal" in wanted:
        check(
            "unit_amount_decimal",
            wanted["unit_amount_decimal"],
            remote.get("unit_amount_decimal"),
        )
    if "transform_quantity" in wanted:
        transform = remote.get("transform_quantity") or {}
        for key, value in wanted["transform_quantity"].items():
            check(f"transform_quantity.{key}", value, transform.get(key))
    if "tiers_mode" in wanted:
        check("tiers_mode", wanted["tiers_mode"], remote.get("tiers_mode"))
    if "tiers" in wanted and remote.get("tiers") is not None:
        check("tiers", _tiers(wanted["tiers"]), _tiers(remote["tiers"]))
    recurring = remote.get("recurring") or {}
    for key, value in (wanted.get("recurring") or {}).items():
        check(f"recurring.{key}", value, recurring.get(key))
    return diffs


def _tiers(tiers: list[dict[str, Any]]) -> list[tuple]:
    result = []
    for tier in tiers:
        up_to = tier.get("up_to")
        flat = tier.get("flat_amount")
        if flat is None and tier.get("flat_amount_decimal") is not None:
            flat = tier["flat_amount_decimal"]
        result.append(
            (
                None if up_to in (None, "inf") else int(up_to),
                _norm(tier.get("unit_amount_decimal") or 0),
                _norm(flat or 0),
            )
        )
    return result


def _norm(value: Any) -> Any:
    """Stripe answers decimals as Decimal, apimon stored strings: compare numbers."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | Decimal | str):
        try:
            return Decimal(str(value)).normalize()
        except InvalidOperation:
            return value
    return value


def _show(value: Any) -> str:
    return "missing" if value is None else repr(str(value))


def _record(row: CatalogObject, kind: str, detail: str, now) -> bool:
    """Open a drift, or refresh the open one. True if it is new."""
    updated = CatalogDrift.objects.filter(
        catalog_object=row, kind=kind, resolved_at=None
    ).update(detail=detail, last_seen_at=now)
    if updated:
        return False
    try:
        with transaction.atomic():
            CatalogDrift.objects.create(
                organization_id=row.organization_id,
                catalog_object=row,
                kind=kind,
                detail=detail,
                detected_at=now,
                last_seen_at=now,
            )
    except IntegrityError:
        return False  # a concurrent run opened it
    log.warning("catalog drift: %s", detail)
    return True


# --- Repair -------------------------------------------------------------------------


class RepairError(Exception):
    pass


def drift_repair(*, drift: CatalogDrift, actor: str = "") -> str:
    """Put the Stripe object back the way apimon made it; returns what was done.

    archived → re-activated; edited → apimon's name and metadata written back (or, for
    a Price whose amounts differ, archived and replaced, since prices are immutable);
    deleted → re-created by a catalog sync.
    """
    if not drift.is_open:
        raise RepairError("This drift is already resolved.")
    row = drift.catalog_object
    organization = drift.organization
    try:
        connection = active_connection(organization)
    except CatalogError as exc:
        raise RepairError(str(exc)) from None
    if connection.account_id != row.account_id:
        raise RepairError("The object is on an account that is no longer connected.")
    client = sc.get_client()
    resource = stripe_resource(client, row.kind)

    def options(*parts: object) -> dict[str, Any]:
        return sc.request_options(
            account=row.account_id,
            idempotency_key=sc.idempotency_key("repair", drift.pk, *parts),
        )

    data = row.synced_data
    if drift.kind == DriftKind.ARCHIVED:
        resource.update(row.stripe_id, {"active": True}, options("activate"))
        done = f"Re-activated {row.stripe_id}"
    elif drift.kind == DriftKind.EDITED and (
        row.kind == CatalogKind.PRODUCT or _only_metadata_differs(client, row)
    ):
        params: dict[str, Any] = {"metadata": data.get("metadata") or {}}
        if row.kind == CatalogKind.PRODUCT:
            params["name"] = data["name"]
        else:
            params["nickname"] = data.get("nickname", "")
        resource.update(row.stripe_id, params, options("restore"))
        done = f"Restored apimon's values on {row.stripe_id}"
    else:
        # Deleted, or a price whose amounts no longer match: let the sync create a
        # fresh object (the old one, if any, is archived).
        _retire_row(row, client, options, keep_drift=drift.pk)
        catalog_sync(organization=organization)
        done = f"Re-created {row.get_kind_display().lower()} for {row.stripe_id}"
    suffix = f" by {actor}" if actor else ""
    CatalogDrift.objects.filter(pk=drift.pk, resolved_at=None).update(
        resolved_at=timezone.now(), resolution=f"{done}{suffix}"
    )
    return done


def _only_metadata_differs(client, row: CatalogObject) -> bool:
    """True when all that differs on a Price is what an update can change."""
    remote = _retrieve(client, row, sc.request_options(account=row.account_id))
    if remote is None:
        return False
    differences = _differences(row.kind, row.synced_data, remote)
    return all(d.startswith("metadata.") for d in differences)


def _retire_row(row: CatalogObject, client, options, *, keep_drift: int) -> None:
    resource = stripe_resource(client, row.kind)
    with contextlib.suppress(StripeInvalidRequest):  # deleted in Stripe
        resource.update(
            row.stripe_id, {"active": False}, options("archive", row.stripe_id)
        )
    now = timezone.now()
    row.retired_at = now
    row.active = False
    row.save(update_fields=["retired_at", "active", "updated_at"])
    CatalogDrift.objects.filter(catalog_object=row, resolved_at=None).exclude(
        pk=keep_drift
    ).update(resolved_at=now, resolution="Retired by apimon during a repair")
    if row.kind == CatalogKind.PRODUCT:
        # Its prices belong to the old product: the sync makes new ones.
        for price in CatalogObject.objects.filter(
            account_id=row.account_id,
            kind=CatalogKind.PRICE,
            product_stripe_id=row.stripe_id,
            retired_at=None,
        ):
            _retire_row(price, client, options, keep_drift=keep_drift)


# --- Scheduling -----------------------------------------------------------------------

# Catalog events come in bursts (a sync archives several objects): one check per
# organization within this window is enough.
RECONCILE_SOON_WINDOW = 60


def schedule_reconcile_for_account(account_id: str) -> None:
    """Reconcile the organization connected to `account_id` shortly (after commit)."""
    from django.core.cache import cache

    from billing.tasks import reconcile_organization

    org_id = (
        StripeConnection.objects.filter(
            account_id=account_id, disconnected_at__isnull=True
        )
        .values_list("organization_id", flat=True)
        .first()
    )
    if org_id is None:
        return
    if not cache.add(f"billing:reconcile-soon:{org_id}", 1, RECONCILE_SOON_WINDOW):
        return
    transaction.on_commit(
        lambda: reconcile_organization.apply_async(args=[org_id], countdown=30),
        robust=True,
    )
