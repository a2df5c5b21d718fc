import re
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from apimon.models import Invitation, Membership, Organization, Role
from tests.conftest import PASSWORD, make_user


def invite(client, org, email, role="publisher"):
    return client.post(
        reverse("members", args=[org.slug]), {"email": email, "role": role}
    )


def link_from_last_email() -> str:
    return re.search(r"http://\S+/invitations/\S+/", mail.outbox[-1].body).group(0)


@pytest.mark.django_db
def test_a_signed_in_user_creates_an_organization_and_owns_it(client_for):
    user = make_user("founder@example.test")
    client = client_for(user)
    response = client.post(reverse("organization-create"), {"name": "Weather Co"})
    org = Organization.objects.get(name="Weather Co")
    assert response.status_code == 302
    assert org.slug == "weather-co"
    assert org.plan.is_trial
    assert Membership.objects.get(user=user, organization=org).role == Role.OWNER


@pytest.mark.django_db
def test_two_organizations_with_one_name_get_distinct_slugs(client_for):
    client = client_for(make_user("a@example.test"))
    client.post(reverse("organization-create"), {"name": "Weather Co"})
    client.post(reverse("organization-create"), {"name": "Weather Co"})
    assert sorted(Organization.objects.values_list("slug", flat=True)) == [
        "weather-co",
        "weather-co-2",
    ]


@pytest.mark.django_db
def test_an_empty_name_shows_an_error_and_creates_nothing(client_for):
    client = client_for(make_user("a@example.test"))
    response = client.post(reverse("organization-create"), {"name": "  "})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert Organization.objects.count() == 0


def test_the_owner_invites_a_publisher_who_accepts_once(world, client_for, client):
    owner_client = client_for(world.owner)
    response = invite(owner_client, world.org, "new.pub@example.test")
    assert response.status_code == 302
    assert mail.outbox[-1].to == ["new.pub@example.test"]
    link = link_from_last_email()
    path = link.replace("http://127.0.0.1:8000", "")

    newcomer = make_user("new.pub@example.test")
    client.logout()
    client.force_login(newcomer, backend="django.contrib.auth.backends.ModelBackend")
    page = client.get(path)
    assert "Join Acme" in page.content.decode()
    accepted = client.post(path)
    assert accepted.status_code == 302
    membership = Membership.objects.get(user=newcomer, organization=world.org)
    assert membership.role == Role.PUBLISHER

    # Single use: a second user with the same link gets nothing.
    other = make_user("someone@example.test")
    client.force_login(other, backend="django.contrib.auth.backends.ModelBackend")
    client.post(path)
    assert not Membership.objects.filter(user=other, organization=world.org).exists()
    assert "This invitation is accepted" in client.get(path).content.decode()


def test_an_expired_invitation_is_refused(world, client_for):
    invite(client_for(world.owner), world.org, "late@example.test")
    path = link_from_last_email().replace("http://127.0.0.1:8000", "")
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    late = make_user("late@example.test")
    client = client_for(late)
    client.post(path)
    assert not Membership.objects.filter(user=late, organization=world.org).exists()
    assert "This invitation is expired" in client.get(path).content.decode()


def test_a_revoked_invitation_is_refused(world, client_for):
    owner_client = client_for(world.owner)
    invite(owner_client, world.org, "nope@example.test")
    path = link_from_last_email().replace("http://127.0.0.1:8000", "")
    invitation = Invitation.objects.get()
    owner_client.post(
        reverse("invitation-revoke", args=[world.org.slug, invitation.pk])
    )
    user = make_user("nope@example.test")
    client = client_for(user)
    client.post(path)
    assert not Membership.objects.filter(user=user, organization=world.org).exists()


@pytest.mark.django_db
def test_an_unknown_invitation_token_is_404(client):
    assert client.get("/invitations/not-a-token/").status_code == 404


def test_an_anonymous_invitee_is_offered_sign_up_and_log_in(world, client_for, client):
    invite(client_for(world.owner), world.org, "fresh@example.test")
    path = link_from_last_email().replace("http://127.0.0.1:8000", "")
    client.logout()
    page = client.get(path).content.decode()
    assert "Sign up to accept" in page and "Log in to accept" in page


def test_inviting_a_bad_email_shows_the_error_next_to_the_field(world, client_for):
    response = invite(client_for(world.owner), world.org, "not-an-email")
    assert response.status_code == 200
    assert "Enter a valid email address" in response.content.decode()
    assert Invitation.objects.count() == 0


def test_the_owner_cannot_invite_into_another_organization(world, client_for):
    response = invite(client_for(world.owner), world.other_org, "x@example.test")
    assert response.status_code == 404
    assert Invitation.objects.count() == 0


def test_the_owner_cannot_revoke_another_organizations_invitation(world, client_for):
    invite(client_for(world.outsider), world.other_org, "x@example.test")
    invitation = Invitation.objects.get()
    url = reverse("invitation-revoke", args=[world.org.slug, invitation.pk])
    assert client_for(world.owner).post(url).status_code == 404
    invitation.refresh_from_db()
    assert invitation.status == "pending"


def test_the_last_owner_cannot_be_demoted_or_removed(world, client_for):
    client = client_for(world.owner)
    membership = Membership.objects.get(user=world.owner, organization=world.org)
    url = reverse("member-update", args=[world.org.slug, membership.pk])
    client.post(url, {"action": "role", "role": "publisher"})
    client.post(url, {"action": "remove"})
    membership.refresh_from_db()
    assert membership.role == Role.OWNER


def test_the_owner_changes_a_role_and_removes_a_member(world, client_for):
    client = client_for(world.owner)
    pub = Membership.objects.get(user=world.publisher, organization=world.org)
    url = reverse("member-update", args=[world.org.slug, pub.pk])
    client.post(url, {"action": "role", "role": "owner"})
    pub.refresh_from_db()
    assert pub.role == Role.OWNER
    client.post(url, {"action": "remove"})
    assert not Membership.objects.filter(pk=pub.pk).exists()


def test_an_owner_cannot_touch_a_membership_of_another_organization(world, client_for):
    theirs = Membership.objects.get(user=world.outsider, organization=world.other_org)
    url = reverse("member-update", args=[world.org.slug, theirs.pk])
    assert client_for(world.owner).post(url, {"action": "remove"}).status_code == 404
    assert Membership.objects.filter(pk=theirs.pk).exists()


def test_anyone_signs_up_as_a_subscriber_in_a_store(world, client):
    url = reverse("store-signup", args=[world.org.slug])
    page = client.get(url)
    assert "Sign up to Acme" in page.content.decode()
    response = client.post(
        url, {"email": "dev@example.test", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302
    membership = Membership.objects.get(user__email="dev@example.test")
    assert (membership.organization, membership.role) == (world.org, Role.SUBSCRIBER)


def test_a_store_sign_up_with_mismatched_passwords_creates_nobody(world, client):
    url = reverse("store-signup", args=[world.org.slug])
    response = client.post(
        url,
        {
            "email": "dev@example.test",
            "password1": PASSWORD,
            "password2": "other-pass-1",
        },
    )
    assert response.status_code == 200
    assert "You must type the same password each time" in response.content.decode()
    assert not Membership.objects.filter(user__email="dev@example.test").exists()


def test_a_signed_in_user_joins_a_store_as_subscriber(world, client_for):
    client = client_for(world.outsider)
    url = reverse("store-join", args=[world.org.slug])
    assert "Join Acme" in client.get(url).content.decode()
    client.post(url)
    assert Membership.objects.get(user=world.outsider, organization=world.org).role == (
        Role.SUBSCRIBER
    )
    # The outsider keeps their own organization too: one login, several organizations.
    assert Membership.objects.filter(user=world.outsider).count() == 2


def test_joining_does_not_demote_an_owner(world, client_for):
    client_for(world.owner).post(reverse("store-join", args=[world.org.slug]))
    assert Membership.objects.get(user=world.owner, organization=world.org).role == (
        Role.OWNER
    )


def test_the_navbar_switcher_lists_every_organization_of_the_user(world, client_for):
    client = client_for(world.outsider)
    client.post(reverse("store-join", args=[world.org.slug]))
    page = client.get(reverse("home")).content.decode()
    switcher = page[page.index('id="org-switcher"') :]
    assert "/t/acme/" in switcher and "/t/globex/" in switcher


def test_the_tenant_home_sends_each_role_to_its_area(world, client_for):
    url = reverse("tenant-home", args=[world.org.slug])
    assert client_for(world.publisher).get(url)["Location"] == "/t/acme/publisher/"
    assert client_for(world.subscriber).get(url)["Location"] == "/t/acme/store/"


def test_the_navbar_shows_organization_and_role(world, client_for):
    page = client_for(world.publisher).get("/t/acme/publisher/").content.decode()
    assert "Acme" in page and ">publisher<" in page


@pytest.mark.django_db
def test_the_new_organization_hint_shows_the_address_pattern(client_for):
    # Help texts are text: "<name>" used to reach the page as an unknown HTML tag,
    # which the browser dropped ("Its address is made from it: /t//.").
    page = client_for(make_user("a@example.test")).get(reverse("organization-create"))
    html = page.content.decode()
    assert "Its address is made from it: /t/&lt;name&gt;/." in html
    assert "/t/<name>/" not in html


def _api_page(world):
    return f"/t/{world.org.slug}/store/apis/7/"


@pytest.mark.parametrize("next_path", ["api", None])
def test_store_sign_up_goes_back_to_the_page_it_started_from(world, client, next_path):
    target = _api_page(world) if next_path else None
    url = reverse("store-signup", args=[world.org.slug])
    data = {"email": "dev@example.test", "password1": PASSWORD, "password2": PASSWORD}
    if target:
        data["next"] = target
    response = client.post(url + (f"?next={target}" if target else ""), data)
    assert response.status_code == 302
    assert response["Location"] == (target or f"/t/{world.org.slug}/store/")


@pytest.mark.parametrize(
    "bad",
    [
        "https://evil.example/",
        "//evil.example/t/acme/",
        "/\\evil.example/",
        "javascript:alert(1)",
        "store/apis/7/",
    ],
)
def test_store_sign_up_ignores_a_next_that_leaves_the_site(world, client, bad):
    url = reverse("store-signup", args=[world.org.slug])
    response = client.post(
        url,
        {
            "email": "dev@example.test",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "next": bad,
        },
    )
    assert response.status_code == 302
    assert response["Location"] == f"/t/{world.org.slug}/store/"


def _links(html: str) -> list[str]:
    from html import unescape

    return [unescape(h) for h in re.findall(r'href="([^"]*)"', html)]


def _next_of(link: str) -> str:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(link).query)["next"][0]


def test_the_api_pages_sign_up_and_join_links_carry_the_page(world, client, client_for):
    from tests.publisher.helpers import make_api, make_tier

    api = make_api(world.org, tiers=[make_tier(world.org)], publish=True)
    page = f"/t/{world.org.slug}/store/apis/{api.pk}/"
    signups = [
        link
        for link in _links(client.get(page).content.decode())
        if link.startswith(f"/t/{world.org.slug}/store/signup/")
    ]
    assert signups and all(_next_of(link) == page for link in signups)
    # An outsider (signed in, not a member) joins and comes back to the API page.
    outsider = client_for(world.outsider)
    [join] = [
        link
        for link in _links(outsider.get(page).content.decode())
        if link.startswith(f"/t/{world.org.slug}/store/join/")
    ]
    assert _next_of(join) == page
    assert f'name="next" value="{page}"' in outsider.get(join).content.decode()
    response = outsider.post(join, {"next": page})
    assert response["Location"] == page


def test_log_in_and_join_from_the_sign_up_page_keeps_the_page(world, client):
    page = _api_page(world)
    html = client.get(
        reverse("store-signup", args=[world.org.slug]) + f"?next={page}"
    ).content.decode()
    [join] = [
        _next_of(link)
        for link in _links(html)
        if link.startswith("/accounts/login/")
        and _next_of(link).startswith(f"/t/{world.org.slug}/store/join/")
    ]
    assert _next_of(join) == page


@pytest.mark.django_db(transaction=True)
def test_two_owners_demoting_each_other_at_once_keep_one_owner(monkeypatch):
    """Each request checks that another owner remains and then demotes. On
    PostgreSQL the two used to lock each other's membership row and then wait for
    their own: a deadlock, answered with a 500. Both now queue on the organization's
    row; the second sees that it would remove the last owner and is refused."""
    import contextlib
    import threading

    from django.db import connections
    from django.test import Client

    from apimon import services
    from apimon.services import organization_create

    alice, bob = make_user("alice@acme.test"), make_user("bob@acme.test")
    org = organization_create(user=alice, name="Acme")
    Membership.objects.create(user=bob, organization=org, role=Role.OWNER)
    members = {m.user_id: m for m in Membership.objects.filter(organization=org)}

    # Both requests pass the "another owner remains" check before either writes:
    # the interleaving that deadlocked. (After the fix the second request waits
    # for the first one's lock instead, and the barrier gives up after a second.)
    barrier = threading.Barrier(2, timeout=1)
    checked = services._ensure_another_owner

    def check_then_wait(membership):
        checked(membership)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()

    monkeypatch.setattr(services, "_ensure_another_owner", check_then_wait)
    statuses = {}

    def demote(actor, target):
        client = Client(raise_request_exception=False)
        client.force_login(actor, backend="django.contrib.auth.backends.ModelBackend")
        url = reverse("member-update", args=[org.slug, members[target.pk].pk])
        try:
            statuses[actor.email] = client.post(url, {"role": "publisher"}).status_code
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=demote, args=(alice, bob)),
        threading.Thread(target=demote, args=(bob, alice)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # The second request is refused inside (a message, 302), or, when the first
    # committed before it was authorized, its actor is no longer an owner (403).
    assert len(statuses) == 2 and set(statuses.values()) <= {302, 403}
    roles = sorted(Membership.objects.filter(organization=org).values_list("role"))
    assert roles == [(Role.OWNER,), (Role.PUBLISHER,)]


@pytest.fixture
def low_limits(settings):
    """Two invitations and two organizations per user, from a clean cache."""
    from django.core.cache import cache

    cache.clear()
    settings.ACCOUNT_RATE_LIMITS = {
        **settings.ACCOUNT_RATE_LIMITS,
        "apimon_invitation": "2/h/user",
        "apimon_organization": "2/d/user",
    }
    yield
    cache.clear()


def test_invitations_are_rate_limited_per_user(world, client_for, low_limits):
    client = client_for(world.owner)
    assert invite(client, world.org, "one@example.test").status_code == 302
    assert invite(client, world.org, "two@example.test").status_code == 302

    refused = invite(client, world.org, "three@example.test")

    assert refused.status_code == 429
    assert "You sent too many invitations: at most 2 per hour." in (
        refused.content.decode()
    )
    assert Invitation.objects.count() == 2 and len(mail.outbox) == 2
    # Per user: another owner of the organization may still invite.
    Membership.objects.filter(user=world.publisher).update(role=Role.OWNER)
    other = client_for(world.publisher)
    assert invite(other, world.org, "three@example.test").status_code == 302


def test_a_refused_invitation_form_does_not_use_the_limit(
    world, client_for, low_limits
):
    client = client_for(world.owner)
    for _ in range(3):
        invite(client, world.org, "not-an-email")
    assert invite(client, world.org, "one@example.test").status_code == 302


@pytest.mark.django_db
def test_organization_creation_is_rate_limited_per_user(client_for, low_limits):
    user = make_user("founder@example.test")
    client = client_for(user)
    for name in ("One", "Two"):
        assert (
            client.post(reverse("organization-create"), {"name": name}).status_code
            == 302
        )

    refused = client.post(reverse("organization-create"), {"name": "Three"})

    assert refused.status_code == 429
    assert "You created too many organizations: at most 2 per day." in (
        refused.content.decode()
    )
    assert Organization.objects.filter(memberships__user=user).count() == 2
    other = client_for(make_user("other@example.test"))
    assert other.post(reverse("organization-create"), {"name": "X"}).status_code == 302
