"""`manage.py seed_demo` prints the demo's logins and the subscriber's API key (README:
"make run" shows them): what it prints must work, as someone copying it would use it."""

from __future__ import annotations

import io
import re

from django.core.management import call_command
from django.test import Client
from django.urls import reverse

LOGIN = re.compile(r"^\s+(\S+)\s+(\S+@\S+)\s+password: (\S+)$", re.MULTILINE)
KEY = re.compile(r"API key of the subscriber's Weather dashboard \(shown once\): (\S+)")
MORE = re.compile(r"more subscribers, same password: (.+)$", re.MULTILINE)


def seed_demo() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out, stderr=out)
    return out.getvalue()


def test_what_seed_demo_prints_works_and_a_second_run_prints_it_again(
    transactional_db,
    short_lived_connections,
    settings,
    backend_url,
    stripe_emulator,
    gateway,
):
    # The demo's APIs point at the sample API; here the one this session serves.
    settings.SAMPLE_API_URL = backend_url
    printed = seed_demo()
    assert printed.startswith("Demo data ready: ")
    assert "No Stripe history" not in printed
    assert "Organization: Acme Weather (/t/acme/), selling weather APIs" in printed
    assert (
        "Organization: Globex Payments (/t/globex/), selling payments APIs" in printed
    )
    logins = LOGIN.findall(printed)
    assert [(role, email.split("@")[1]) for role, email, _ in logins] == [
        ("operator", "apimon.localhost"),
        ("owner", "acme.localhost"),
        ("publisher", "acme.localhost"),
        ("subscriber", "acme.localhost"),
        ("owner", "globex.localhost"),
        ("publisher", "globex.localhost"),
        ("subscriber", "globex.localhost"),
    ]
    more = [e.strip() for line in MORE.findall(printed) for e in line.split(",")]
    assert len(more) == 4
    assert {password for _, _, password in logins} == {"apimon-demo-2026"}
    accounts = [(role, email) for role, email, _ in logins]
    for role, email in [*accounts, *(("subscriber", email) for email in more)]:
        browser = Client()
        response = browser.post(
            reverse("account_login"), {"login": email, "password": "apimon-demo-2026"}
        )
        assert response.status_code == 302, (role, response.content.decode())
        assert response["Location"] == reverse("home"), role
        home = browser.get(reverse("home")).content.decode()
        assert email in home, role
        if role == "operator":
            assert browser.get("/admin/").status_code == 200
        else:
            assert "Acme Weather" in home or "Globex Payments" in home, role
            assert browser.get("/admin/").status_code == 302, role  # not staff

    # The printed key calls the Weather API through the gateway.
    key = KEY.search(printed).group(1)
    response = gateway.get("/gateway/acme/weather/v1/current?city=Berlin", key=key)
    assert response.status_code == 200, response.text
    assert "Berlin" in response.text
    refused = gateway.get(
        "/gateway/acme/weather/v1/current?city=Berlin", key=key[:-1] + "x"
    )
    assert refused.status_code == 401

    again = seed_demo()
    assert again.startswith("Demo data ready.\n")
    assert LOGIN.findall(again) == logins
    assert MORE.findall(again) == MORE.findall(printed)
    assert not KEY.search(again)
