import re

import pytest
from django.core import mail
from django.core.cache import cache
from django.urls import reverse

from apimon.models import User
from tests.conftest import PASSWORD, make_user


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_sign_up_with_email_and_password_logs_the_user_in(client):
    response = client.post(
        reverse("account_signup"),
        {"email": "New@Example.test", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302
    user = User.objects.get()
    assert user.email == "new@example.test"
    home = client.get(reverse("home"))
    assert home.status_code == 200
    assert "new@example.test" in home.content.decode()


@pytest.mark.django_db
def test_sign_up_sends_an_email_verification_link(client):
    client.post(
        reverse("account_signup"),
        {"email": "v@example.test", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert mail.outbox and "confirm" in mail.outbox[-1].body.lower()


@pytest.mark.django_db
def test_a_taken_email_is_refused_next_to_the_field(client):
    make_user("taken@example.test")
    response = client.post(
        reverse("account_signup"),
        {"email": "taken@example.test", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 200
    assert "already registered" in response.content.decode()
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_log_in_and_log_out(client):
    make_user("me@example.test")
    response = client.post(
        reverse("account_login"), {"login": "me@example.test", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200
    client.post(reverse("account_logout"))
    assert client.get(reverse("home")).status_code == 302


@pytest.mark.django_db
def test_a_wrong_password_is_refused(client):
    make_user("me@example.test")
    response = client.post(
        reverse("account_login"), {"login": "me@example.test", "password": "wrong-one"}
    )
    assert response.status_code == 200
    assert "not correct" in response.content.decode()


@pytest.mark.django_db
def test_login_failures_are_rate_limited(client):
    make_user("me@example.test")
    for _ in range(5):
        client.post(
            reverse("account_login"), {"login": "me@example.test", "password": "wrong"}
        )
    # Even the right password is refused while the limit holds.
    response = client.post(
        reverse("account_login"), {"login": "me@example.test", "password": PASSWORD}
    )
    assert "Too many failed login attempts" in response.content.decode()
    assert client.get(reverse("home")).status_code == 302


@pytest.mark.django_db
def test_password_reset_by_email(client):
    make_user("forgot@example.test")
    client.post(reverse("account_reset_password"), {"email": "forgot@example.test"})
    body = mail.outbox[-1].body
    link = re.search(r"http://\S+/accounts/password/reset/key/\S+/", body).group(0)
    path = link.split("://", 1)[1].split("/", 1)[1]
    page = client.get("/" + path, follow=True)
    new_password = "a-brand-new-password-42"
    client.post(
        page.redirect_chain[-1][0] if page.redirect_chain else "/" + path,
        {"password1": new_password, "password2": new_password},
    )
    assert User.objects.get().check_password(new_password)


@pytest.mark.django_db
def test_account_pages_use_apimons_layout(client):
    page = client.get(reverse("account_login")).content.decode()
    assert 'class="navbar"' in page and "apimon.css" in page


@pytest.mark.django_db
def test_mandatory_email_verification_keeps_a_new_user_out_until_they_confirm(
    client, settings
):
    """ACCOUNT_EMAIL_VERIFICATION=mandatory (the environment variable of the same
    name): sign-up sends the link and logs nobody in; the password alone does not
    let them in; the link does."""
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    signup = client.post(
        reverse("account_signup"),
        {"email": "strict@example.test", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert signup.status_code == 302
    assert signup["Location"] == reverse("account_email_verification_sent")
    assert client.get(reverse("home")).status_code == 302  # not logged in
    (sent,) = mail.outbox
    assert sent.to == ["strict@example.test"]
    link = re.search(r"http://\S+/accounts/confirm-email/\S+/", sent.body).group(0)

    login = client.post(
        reverse("account_login"), {"login": "strict@example.test", "password": PASSWORD}
    )
    assert login["Location"] == reverse("account_email_verification_sent")
    assert client.get(reverse("home")).status_code == 302

    path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    client.post(path)
    assert User.objects.get().emailaddress_set.get().verified
    client.post(reverse("account_logout"))
    login = client.post(
        reverse("account_login"), {"login": "strict@example.test", "password": PASSWORD}
    )
    assert login["Location"] == reverse("home")
    assert client.get(reverse("home")).status_code == 200


@pytest.mark.django_db
def test_optional_verification_lets_an_unverified_user_log_in(client):
    client.post(
        reverse("account_signup"),
        {"email": "easy@example.test", "password1": PASSWORD, "password2": PASSWORD},
    )
    client.post(reverse("account_logout"))
    assert not User.objects.get().emailaddress_set.get().verified
    login = client.post(
        reverse("account_login"), {"login": "easy@example.test", "password": PASSWORD}
    )
    assert login.status_code == 302
    assert client.get(reverse("home")).status_code == 200
