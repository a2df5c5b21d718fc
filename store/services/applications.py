"""A subscriber's applications: create, rename, delete (an application holds one
subscription per API and the API keys its code calls with)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apimon import clock
from apimon.models import Organization, User
from store import hooks
from store.lifecycle import LIVE
from store.models import Application


def _check_application(
    *, organization: Organization, owner: User, name: str, exclude_pk: int | None
) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Enter a name."})
    taken = Application.objects.filter(
        organization=organization, owner=owner, name__iexact=name, deleted_at=None
    ).exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationError({"name": f"You already have an application “{name}”."})
    return name


def _save_application(application: Application) -> None:
    try:
        with transaction.atomic():
            application.save()
    except IntegrityError:  # the constraint settles a race of two submits
        raise ValidationError(
            {"name": f"You already have an application “{application.name}”."}
        ) from None


def application_create(
    *, organization: Organization, owner: User, name: str, description: str = ""
) -> Application:
    name = _check_application(
        organization=organization, owner=owner, name=name, exclude_pk=None
    )
    application = Application(
        organization=organization, owner=owner, name=name, description=description
    )
    _save_application(application)
    return application


def application_update(
    *, application: Application, name: str, description: str = ""
) -> Application:
    application.name = _check_application(
        organization=application.organization,
        owner=application.owner,
        name=name,
        exclude_pk=application.pk,
    )
    application.description = description
    _save_application(application)
    return application


@transaction.atomic
def application_delete(*, application: Application, actor: User | None) -> None:
    """Delete an application and revoke its keys. One with live subscriptions is
    refused (cancel them first); one with only cancelled subscriptions is kept as
    history (its subscriptions and invoices point at it) but disappears."""
    locked = Application.objects.select_for_update().get(pk=application.pk)
    if locked.subscriptions.filter(state__in=LIVE).exists():
        raise ValidationError(
            "This application has live subscriptions: cancel them first."
        )
    now = clock.now()
    hashes = list(locked.keys.values_list("key_hash", flat=True))
    if locked.subscriptions.exists():
        locked.keys.filter(revoked_at=None).update(revoked_at=now)
        locked.deleted_at = now
        locked.save(update_fields=["deleted_at", "updated_at"])
    else:
        locked.delete()
    if hashes:
        hooks.keys_changed.send(sender=Application, key_hashes=hashes)
