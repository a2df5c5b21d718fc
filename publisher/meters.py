"""An API's meters: what a subscription is billed for (SPEC §10, docs/metering.md).

Services (writes) and the one read the other layers share. Every API has the built-in
`requests` meter (made with the API, and by a data migration for older APIs); a
publisher adds meters of weighted operations, of quantities the backend reports in a
response header, or of quantities posted to the ingest API only.

A meter's key is fixed once it exists: it names the meter in usage rows, in tier
prices, in the `Apimon-Meter-<key>` header and in ingest events. A meter priced by a
tier version cannot be deleted (the version is what subscribers were sold); a meter
without prices can, and its usage rows, if any, stay and are billed by nobody.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apimon.models import User
from publisher import hooks, operations
from publisher.models import (
    METER_KEY_PATTERN,
    REQUESTS_METER,
    Api,
    Meter,
    MeterSource,
)

MAX_METERS = 20
MAX_SCALE = 1_000_000_000
CUSTOM_SOURCES = (MeterSource.OPERATIONS, MeterSource.RESPONSE, MeterSource.INGEST)
_KEY = re.compile(METER_KEY_PATTERN)


def requests_meter(api: Api) -> Meter:
    """The built-in meter as a row (not saved): one unit per counted request."""
    return Meter(
        api=api,
        key=REQUESTS_METER,
        display_name="Requests",
        unit_label="request",
        display_scale=1,
        source=MeterSource.REQUESTS,
    )


def requests_meter_create(*, api: Api) -> Meter:
    meter = requests_meter(api)
    meter.save()
    return meter


def meters_of(api: Api) -> list[Meter]:
    """The API's meters, `requests` first. An API made without the services (a test,
    a fixture) still has its built-in meter here."""
    meters = list(api.meters.all())
    if not any(m.key == REQUESTS_METER for m in meters):
        meters.insert(0, requests_meter(api))
    return sorted(meters, key=lambda m: (m.key != REQUESTS_METER, m.created_at, m.pk))


def _check(
    *,
    key: str,
    display_name: str,
    unit_label: str,
    display_scale: int,
    source: str,
    operations_list: list[dict],
) -> None:
    errors: dict[str, list[str]] = {}
    if not _KEY.match(key or ""):
        errors["key"] = [
            "Use 1 to 40 lowercase letters, digits and hyphens, starting with a letter."
        ]
    elif key == REQUESTS_METER:
        errors["key"] = ["Every API already has the built-in requests meter."]
    if not (display_name or "").strip():
        errors["display_name"] = ["Enter a name."]
    if not (unit_label or "").strip():
        errors["unit_label"] = ["Enter the name of one unit, e.g. token."]
    if not 1 <= display_scale <= MAX_SCALE:
        errors["display_scale"] = [f"Enter 1 to {MAX_SCALE:,}."]
    if source not in CUSTOM_SOURCES:
        errors["source"] = ["Choose where the quantities come from."]
    elif source != MeterSource.OPERATIONS and operations_list:
        errors["operations"] = ["Only a meter of weighted operations lists operations."]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def meter_create(
    *,
    api: Api,
    actor: User | None,
    key: str,
    display_name: str,
    unit_label: str,
    display_scale: int = 1,
    source: str,
    operations_list: list[dict] = (),  # type: ignore[assignment]
) -> Meter:
    operations_list = list(operations_list)
    _check(
        key=key,
        display_name=display_name,
        unit_label=unit_label,
        display_scale=display_scale,
        source=source,
        operations_list=operations_list,
    )
    if api.meters.count() >= MAX_METERS:
        raise ValidationError(f"An API has at most {MAX_METERS} meters.")
    meter = Meter(
        api=api,
        key=key,
        display_name=display_name.strip(),
        unit_label=unit_label.strip(),
        display_scale=display_scale,
        source=source,
        operations=operations_list,
    )
    try:
        with transaction.atomic():
            meter.save()
    except IntegrityError:
        raise ValidationError(
            {"key": f"This API already has a meter “{key}”."}
        ) from None
    hooks.api_changed.send(sender=Api, api=api)
    return meter


@transaction.atomic
def meter_update(
    *,
    meter: Meter,
    actor: User | None,
    display_name: str,
    unit_label: str,
    display_scale: int,
    source: str,
    operations_list: list[dict] = (),  # type: ignore[assignment]
) -> Meter:
    """Edit a meter; its key stays. The built-in `requests` meter is not edited."""
    if meter.is_builtin:
        raise ValidationError("The built-in requests meter cannot be changed.")
    operations_list = list(operations_list)
    _check(
        key=meter.key,
        display_name=display_name,
        unit_label=unit_label,
        display_scale=display_scale,
        source=source,
        operations_list=operations_list,
    )
    meter.display_name = display_name.strip()
    meter.unit_label = unit_label.strip()
    meter.display_scale = display_scale
    meter.source = source
    meter.operations = operations_list
    meter.save()
    hooks.api_changed.send(sender=Api, api=meter.api)
    return meter


@transaction.atomic
def meter_delete(*, meter: Meter, actor: User | None) -> None:
    if meter.is_builtin:
        raise ValidationError("The built-in requests meter cannot be deleted.")
    api = meter.api
    meter.delete()
    hooks.api_changed.send(sender=Api, api=api)


def operations_text(meter: Meter) -> str:
    return operations.as_text(meter.operations or [])
