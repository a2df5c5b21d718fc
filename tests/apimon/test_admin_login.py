"""The operator admin has no password form of its own: /admin/login/ goes through
allauth's login, so its rate limits and lock-out (ACCOUNT_RATE_LIMITS: 5 failed
logins per account in 5 minutes) apply, and a POST straight to /admin/login/ logs
nobody in."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from apimon.models import User
from tests.conftest import PASSWORD, make_user

LOCKED = "Too many failed login attempts"
pytestmark = pytest.mark.usefixtures("fresh_cache")


@pytest.fixture
def operator(db) -> User:
    return User.objects.create_superuser(email="op@apimon.test", password=PASSWORD)


def log_in(client: Client, email: str, password: str, *, ip: str = "203.0.113.7"):
    return client.post(
        reverse("account_login") + "?next=/admin/",
        {"login": email, "password": password},
        REMOTE_ADDR=ip,
    )


def signed_in_as(client: Client) -> str | None:
    """Whose session the client holds, as the admin sees it."""
    response = client.get(reverse("admin:index"))
    if response.status_code != 200:
        return None
    return response.context["user"].email


def test_the_admin_login_page_is_allauths_login_with_next(client, operator):
    response = client.get(reverse("admin:login") + "?next=/admin/apimon/user/")
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == reverse("account_login")
    assert parse_qs(target.query) == {"next": ["/admin/apimon/user/"]}
    # An outside address is not kept as `next`.
    response = client.get(reverse("admin:login") + "?next=https://evil.test/")
    assert parse_qs(urlsplit(response["Location"]).query) == {"next": ["/admin/"]}


def test_an_operator_logs_in_through_allauth_and_lands_in_the_admin(client, operator):
    response = log_in(client, operator.email, PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert signed_in_as(client) == operator.email


def test_a_post_straight_to_the_admin_login_logs_nobody_in(client, operator):
    response = client.post(
        reverse("admin:login"),
        {"username": operator.email, "password": PASSWORD, "next": "/admin/"},
    )
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == reverse("account_login")
    assert "_auth_user_id" not in client.session
    assert signed_in_as(client) is None


def test_wrong_passwords_lock_the_account_even_against_the_right_one(client, operator):
    for _ in range(5):
        response = log_in(client, operator.email, "wrong-password")
        assert response.status_code == 200
        assert "_auth_user_id" not in client.session
    locked = log_in(client, operator.email, PASSWORD)
    assert locked.status_code == 200
    assert LOCKED in locked.content.decode()
    assert signed_in_as(client) is None
    # Nor from another address: the lock is per account.
    assert (
        LOCKED
        in log_in(client, operator.email, PASSWORD, ip="198.51.100.9").content.decode()
    )
    # And the admin's own login URL does not get around it.
    client.post(
        reverse("admin:login"), {"username": operator.email, "password": PASSWORD}
    )
    assert signed_in_as(client) is None


def test_the_lock_is_lifted_when_its_window_passes(client, operator, monkeypatch):
    for _ in range(5):
        log_in(client, operator.email, "wrong-password")
    assert LOCKED in log_in(client, operator.email, PASSWORD).content.decode()
    # allauth counts in the cache with the window as the timeout: 5 minutes later
    # the counters are gone (clearing them stands in for waiting).
    cache.clear()
    assert log_in(client, operator.email, PASSWORD).status_code == 302
    assert signed_in_as(client) == operator.email


def test_another_account_is_not_locked_by_someone_elses_failures(operator):
    attacker = Client()
    for _ in range(5):
        log_in(attacker, operator.email, "wrong-password")
    colleague = User.objects.create_superuser(
        email="op2@apimon.test", password=PASSWORD
    )
    other = Client()
    assert (
        log_in(other, colleague.email, PASSWORD, ip="198.51.100.20").status_code == 302
    )
    assert signed_in_as(other) == colleague.email


def test_many_failures_from_one_address_block_that_address(operator):
    # allauth's per-address limit (10 a minute) across accounts.
    attacker = Client()
    for n in range(10):
        log_in(attacker, f"guess{n}@apimon.test", "wrong-password")
    refused = log_in(attacker, operator.email, PASSWORD)
    assert LOCKED in refused.content.decode()
    elsewhere = Client()
    assert (
        log_in(elsewhere, operator.email, PASSWORD, ip="198.51.100.30").status_code
        == 302
    )


def test_a_signed_in_non_operator_is_told_not_sent_round_in_circles(client, db):
    user = make_user("someone@acme.test")
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    response = client.get(reverse("admin:index"), follow=True)
    assert response.status_code == 403
    assert "not an operator account" in response.content.decode()
