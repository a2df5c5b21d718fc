"""Ingest tokens in the publisher console: owners create them (shown once, stored
hashed) and revoke them; other roles and other tenants cannot."""

from __future__ import annotations

import hashlib
import re

from gateway.models import IngestToken

PAGE = "/t/acme/publisher/ingest-tokens/"


def test_an_owner_creates_a_token_shown_once_and_stored_hashed(world, client_for):
    client = client_for(world.owner)
    response = client.post(PAGE, {"name": "edge nginx"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    raw = re.search(r'id="raw-token">([^<]+)<', response.content.decode()).group(1)
    token = IngestToken.objects.get()
    assert (token.organization, token.name, token.created_by) == (
        world.org,
        "edge nginx",
        world.owner,
    )
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw.startswith(token.prefix + "_")
    listing = client.get(PAGE).content.decode()
    assert raw not in listing
    assert f"{token.prefix}…" in listing

    # It works on the ingest API until it is revoked.
    api = client.post(
        "/api/usage/events", [], content_type="application/json",
        headers={"Authorization": f"Bearer {raw}"},
    )  # fmt: skip
    assert api.json()["error"]["code"] == "bad_batch"  # authenticated
    revoke = client.post(f"{PAGE}{token.pk}/revoke/")
    assert revoke.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    api = client.post(
        "/api/usage/events", [], content_type="application/json",
        headers={"Authorization": f"Bearer {raw}"},
    )  # fmt: skip
    assert api.json()["error"]["code"] == "invalid_token"


def test_only_owners_manage_tokens(world, client_for):
    for user in (world.publisher, world.subscriber):
        assert client_for(user).get(PAGE).status_code == 403
        assert client_for(user).post(PAGE, {"name": "x"}).status_code == 403
    assert not IngestToken.objects.exists()


def test_another_tenants_tokens_are_out_of_reach(world, client_for):
    from gateway.ingest import ingest_token_create

    theirs = ingest_token_create(organization=world.other_org, actor=None).token
    client = client_for(world.owner)
    assert theirs.prefix not in client.get(PAGE).content.decode()
    assert client.post(f"{PAGE}{theirs.pk}/revoke/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    # Globex's owner is no member of acme.
    assert client_for(world.outsider).get(PAGE).status_code == 404


def test_a_token_name_with_a_nul_or_too_long_is_refused(world, client_for):
    """Found by the fuzz tests: the name went to the database as posted (a NUL is
    a 500 on PostgreSQL)."""
    client = client_for(world.owner)
    for name, message in (
        ("edge\x00", "Null characters are not allowed."),
        ("x" * 81, "at most 80 characters"),
    ):
        response = client.post(PAGE, {"name": name})
        assert response.status_code == 200
        assert message in response.content.decode()
        assert 'id="raw-token"' not in response.content.decode()
    assert not IngestToken.objects.exists()
