"""API keys: shown once, stored as a hash with a visible prefix, listed with their
dates, revoked at once, rotated with a grace period the subscriber sees."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from store import services
from store.keys import hash_key
from store.models import ApiKey
from tests.store.conftest import store_url


def test_a_key_is_shown_once_and_only_its_hash_is_stored(world, app, client_for):
    client = client_for(world.subscriber)
    response = client.post(
        store_url(world.org, f"applications/{app.pk}/keys/new/"), {"name": "prod"}
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    key = ApiKey.objects.get()
    page = response.content.decode()
    raw = page.split('id="raw-key">')[1].split("<")[0]
    assert raw.startswith(key.prefix + "_")
    assert key.key_hash == hash_key(raw) and raw not in (key.prefix, key.key_hash)
    assert 'data-copy-target="raw-key"' in page and "js/apimon.js" in page
    assert "only time it is shown" in page
    # The application page lists it by prefix, never the key itself.
    listing = client.get(
        store_url(world.org, f"applications/{app.pk}/")
    ).content.decode()
    assert key.prefix in listing and raw not in listing
    assert "prod" in listing and "never" in listing


def test_the_list_shows_when_a_key_was_last_used(world, app, client_for):
    issued = services.api_key_create(application=app, actor=None)
    ApiKey.objects.filter(pk=issued.key.pk).update(
        last_used_at=timezone.now().replace(
            year=2026, month=11, day=3, hour=9, minute=5
        )
    )
    page = client_for(world.subscriber).get(
        store_url(world.org, f"applications/{app.pk}/")
    )
    assert "2026-11-03 09:05 UTC" in page.content.decode()


def test_revoke_stops_a_key_at_once(world, app, client_for):
    # The gateway refusing it at once: tests/store/test_gateway_effects.py.
    issued = services.api_key_create(application=app, actor=None)
    client = client_for(world.subscriber)
    response = client.post(
        store_url(world.org, f"keys/{issued.key.pk}/revoke/"), follow=True
    )
    issued.key.refresh_from_db()
    assert not issued.key.is_usable()
    assert "revoked" in response.content.decode()


def test_rotation_issues_a_new_key_and_the_old_one_works_for_the_grace_period(
    world, app, client_for
):
    old = services.api_key_create(application=app, actor=None, name="prod").key
    client = client_for(world.subscriber)
    form = client.get(store_url(world.org, f"keys/{old.pk}/rotate/"))
    assert "24 hours" in form.content.decode()
    before = timezone.now()
    response = client.post(
        store_url(world.org, f"keys/{old.pk}/rotate/"), {"grace": "24"}
    )
    assert response.status_code == 200
    old.refresh_from_db()
    new = ApiKey.objects.exclude(pk=old.pk).get()
    assert old.replaced_by == new and new.name == "prod"
    assert before + timedelta(hours=24) <= old.expires_at
    assert old.expires_at <= timezone.now() + timedelta(hours=24)
    assert old.is_usable() and new.is_usable()
    assert not old.is_usable(old.expires_at)
    page = response.content.decode()
    assert f"The old key {old.prefix}… keeps working until" in page
    listing = client.get(
        store_url(world.org, f"applications/{app.pk}/")
    ).content.decode()
    assert "works for 23" in listing and "Rotated: works until" in listing


def test_rotation_without_grace_stops_the_old_key_now(world, app):
    old = services.api_key_create(application=app, actor=None).key
    services.api_key_rotate(key=old, actor=None, grace=timedelta(0))
    old.refresh_from_db()
    assert not old.is_usable()


def test_a_revoked_or_rotated_key_cannot_be_rotated(world, app):
    key = services.api_key_create(application=app, actor=None).key
    services.api_key_rotate(key=key, actor=None)
    with pytest.raises(ValidationError, match="already rotated"):
        services.api_key_rotate(key=key, actor=None)
    other = services.api_key_create(application=app, actor=None).key
    services.api_key_revoke(key=other, actor=None)
    with pytest.raises(ValidationError, match="no longer works"):
        services.api_key_rotate(key=other, actor=None)


def test_another_subscribers_key_is_404(world, app, client_for):
    key = services.api_key_create(application=app, actor=None).key
    for user in (world.publisher, world.owner):
        client = client_for(user)
        assert (
            client.get(store_url(world.org, f"keys/{key.pk}/rotate/")).status_code
            == 404
        )
        assert (
            client.post(store_url(world.org, f"keys/{key.pk}/revoke/")).status_code
            == 404
        )
    outsider = client_for(world.outsider)
    assert (
        outsider.post(store_url(world.org, f"keys/{key.pk}/revoke/")).status_code == 404
    )
    key.refresh_from_db()
    assert key.is_usable()


def test_an_application_holds_a_bounded_number_of_active_keys(world, app):
    for _ in range(services.MAX_ACTIVE_KEYS):
        services.api_key_create(application=app, actor=None)
    with pytest.raises(ValidationError, match="at most"):
        services.api_key_create(application=app, actor=None)
