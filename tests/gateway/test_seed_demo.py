"""`manage.py seed_demo` prints the demo's logins and the subscriber's API key (README:
"make run" shows them): what it prints must work, as someone copying it would use it."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

LOGIN = re.compile(r"^\s+(\S+)\s+(\S+@\S+)\s+password: (\S+)$", re.MULTILINE)
KEY = re.compile(r"API key of the subscriber's Weather dashboard \(shown once\): (\S+)")


def seed_demo() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


@pytest.fixture
def printed(transactional_db, short_lived_connections, settings, backend_url):
    # The demo's APIs point at the sample API; here the one this session serves.
    settings.SAMPLE_API_URL = backend_url
    return seed_demo()


def test_the_printed_logins_log_in(printed):
    assert "Demo data ready." in printed
    assert "Organization: Acme Weather (/t/acme/)" in printed
    logins = LOGIN.findall(printed)
    assert [role for role, _, _ in logins] == [
        "operator",
        "owner",
        "publisher",
        "subscriber",
    ]
    for role, email, password in logins:
        browser = Client()
        response = browser.post(
            reverse("account_login"), {"login": email, "password": password}
        )
        assert response.status_code == 302, (role, response.content.decode())
        assert response["Location"] == reverse("home"), role
        home = browser.get(reverse("home")).content.decode()
        assert email in home, role
        if role == "operator":
            assert browser.get("/admin/").status_code == 200
        else:
            assert "Acme Weather" in home, role
            assert browser.get("/admin/").status_code == 302, role  # not staff


def test_the_printed_key_calls_the_weather_api_through_the_gateway(printed, gateway):
    key = KEY.search(printed).group(1)
    response = gateway.get("/gateway/acme/weather/v1/current?city=Berlin", key=key)
    assert response.status_code == 200, response.text
    assert "Berlin" in response.text
    refused = gateway.get(
        "/gateway/acme/weather/v1/current?city=Berlin", key=key[:-1] + "x"
    )
    assert refused.status_code == 401


def test_a_second_run_prints_the_same_logins_and_no_new_key(printed):
    again = seed_demo()
    assert LOGIN.findall(again) == LOGIN.findall(printed)
    assert KEY.search(printed) and not KEY.search(again)
