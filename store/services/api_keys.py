"""API keys of an application: issue, revoke, rotate (with a grace period). Only
the SHA-256 of a key is stored; the raw key is shown once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction

from apimon import clock
from apimon.models import User
from store import hooks
from store.keys import generate_key
from store.models import ApiKey, Application

# A rotated key keeps working this long unless the subscriber picks another grace.
KEY_ROTATION_GRACE = timedelta(hours=24)
MAX_KEY_ROTATION_GRACE = timedelta(days=30)
MAX_ACTIVE_KEYS = 20


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    raw: str  # shown once, never stored


def _active_keys(application: Application):
    now = clock.now()
    return application.keys.filter(revoked_at=None).exclude(expires_at__lte=now)


def _keys_changed(*key_hashes: str) -> None:
    hooks.keys_changed.send(sender=ApiKey, key_hashes=list(key_hashes))


@transaction.atomic
def api_key_create(
    *, application: Application, actor: User | None, name: str = ""
) -> IssuedKey:
    """A new key; the raw key is in the result and nowhere else."""
    locked = Application.objects.select_for_update().get(pk=application.pk)
    if locked.deleted_at is not None:
        raise ValidationError("This application is deleted.")
    if _active_keys(locked).count() >= MAX_ACTIVE_KEYS:
        raise ValidationError(
            {
                "name": f"An application holds at most {MAX_ACTIVE_KEYS} active keys: "
                "revoke one first."
            }
        )
    new = generate_key()
    key = ApiKey.objects.create(
        organization=locked.organization,
        application=locked,
        name=(name or "").strip()[:80],
        prefix=new.prefix,
        key_hash=new.key_hash,
    )
    return IssuedKey(key=key, raw=new.raw)


@transaction.atomic
def api_key_revoke(*, key: ApiKey, actor: User | None) -> ApiKey:
    """The key stops working at once (also an old key still in its grace period)."""
    locked = ApiKey.objects.select_for_update().get(pk=key.pk)
    if locked.revoked_at is None:
        locked.revoked_at = clock.now()
        locked.save(update_fields=["revoked_at"])
        _keys_changed(locked.key_hash)
    key.revoked_at = locked.revoked_at
    return locked


@transaction.atomic
def api_key_rotate(
    *, key: ApiKey, actor: User | None, grace: timedelta = KEY_ROTATION_GRACE
) -> IssuedKey:
    """A new key replaces `key`, which keeps working for `grace` (0: stops now), so
    a subscriber can deploy the new one without an outage."""
    if not timedelta(0) <= grace <= MAX_KEY_ROTATION_GRACE:
        raise ValidationError({"grace": "Choose a grace period of up to 30 days."})
    locked = ApiKey.objects.select_for_update().get(pk=key.pk)
    now = clock.now()
    if not locked.is_usable(now):
        raise ValidationError("This key no longer works: create a new key instead.")
    if locked.replaced_by_id is not None:
        raise ValidationError("This key was already rotated.")
    issued = api_key_create(
        application=locked.application, actor=actor, name=locked.name
    )
    until = now + grace
    locked.expires_at = min(until, locked.expires_at) if locked.expires_at else until
    locked.replaced_by = issued.key
    locked.save(update_fields=["expires_at", "replaced_by"])
    _keys_changed(locked.key_hash)
    return issued
