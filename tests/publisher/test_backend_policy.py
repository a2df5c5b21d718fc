"""A backend URL may not reach the platform's own network (apimon/egress.py): the API
form resolves the host and refuses, next to the field, an address on a loopback,
private or link-local network; the API's page tells the publisher when the gateway
refused to connect."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from apimon import egress
from publisher import services
from publisher.models import Api, ApiState
from tests.helpers import by_id, field_error
from tests.publisher.helpers import make_api
from tests.publisher.test_apis import GOOD, url


@pytest.fixture
def deny(settings):
    settings.BACKEND_PRIVATE_NETWORKS = "deny"
    settings.BACKEND_ALLOWED_NETWORKS = []
    return settings


def create(world, client_for, backend_url):
    return client_for(world.publisher).post(
        url(world.org, "new/"), {**GOOD, "backend_url": backend_url}
    )


@pytest.mark.parametrize(
    ("backend_url", "message"),
    [
        ("http://127.0.0.1:12111/", "127.0.0.1 is a loopback address"),
        ("http://localhost/", "localhost is a loopback name"),
        ("http://0.0.0.0/", "0.0.0.0 is a “this network” address"),
        ("http://[::ffff:127.0.0.1]/", "IPv4-mapped form of 127.0.0.1"),
        ("http://[::1]:8000/", "::1 is a loopback address"),
        ("http://169.254.169.254/latest/", "the cloud metadata address"),
        ("http://10.0.0.8/", "a private address (RFC 1918)"),
        ("http://192.168.1.20:8080/", "a private address (RFC 1918)"),
        ("http://172.20.0.3/", "a private address (RFC 1918)"),
        ("http://100.64.0.9/", "a carrier-grade NAT address"),
        ("http://[fd00::1]/", "a unique local address"),
        ("http://[fe80::1]/", "a link-local address"),
    ],
)
@pytest.mark.django_db
def test_the_form_refuses_a_backend_on_the_platforms_network(
    world, client_for, deny, backend_url, message
):
    response = create(world, client_for, backend_url)

    assert response.status_code == 200
    error = field_error(response.content, "backend_url")
    assert message in error
    assert "use the backend's public address" in error
    assert Api.objects.count() == 0


def hosts(mapping: dict[str, list[str]]):
    """getaddrinfo() over a fixed mapping: the names of these tests, without DNS."""

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in mapping:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (address, port),
            )
            for address in mapping[host]
        ]

    return getaddrinfo


@pytest.mark.django_db
def test_a_name_is_refused_by_the_address_it_resolves_to(
    world, client_for, deny, monkeypatch
):
    monkeypatch.setattr(
        egress,
        "getaddrinfo",
        hosts(
            {
                "backend.corp.example": ["10.0.0.5"],
                "mixed.example": ["93.184.215.14", "169.254.169.254"],
                "public.example": ["93.184.215.14", "2606:4700::6810:84e5"],
            }
        ),
    )
    error = field_error(
        create(world, client_for, "https://backend.corp.example/v1").content,
        "backend_url",
    )
    assert "backend.corp.example resolves to 10.0.0.5, a private address" in error
    error = field_error(
        create(world, client_for, "https://mixed.example/v1").content, "backend_url"
    )
    assert "resolves to 169.254.169.254, the cloud metadata address" in error
    assert Api.objects.count() == 0

    assert create(world, client_for, "https://public.example/v1").status_code == 302
    assert Api.objects.get().backend_url == "https://public.example/v1"


@pytest.mark.parametrize(
    "backend_url", ["http://2130706433/", "http://0x7f.1/", "http://017700000001/"]
)
@pytest.mark.django_db
def test_numeric_ipv4_forms_are_refused(world, client_for, deny, backend_url):
    response = create(world, client_for, backend_url)
    assert response.status_code == 200
    assert field_error(response.content, "backend_url")
    assert Api.objects.count() == 0


@pytest.mark.django_db
def test_a_name_that_does_not_resolve_is_refused_with_its_own_message(
    world, client_for, deny
):
    response = create(world, client_for, "https://backend.no-such-zone.invalid/v1")
    error = field_error(response.content, "backend_url")
    assert "does not resolve" in error
    assert "check the host name" in error
    assert Api.objects.count() == 0


@pytest.mark.django_db
def test_a_public_address_is_accepted(world, client_for, deny):
    response = create(world, client_for, "https://93.184.215.14/weather")
    assert response.status_code == 302
    assert Api.objects.get().backend_url == "https://93.184.215.14/weather"


@pytest.mark.django_db
def test_the_operators_allowed_networks_are_accepted(world, client_for, deny):
    deny.BACKEND_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128", "10.8.0.0/16"]
    assert create(world, client_for, "http://localhost:8100/weather").status_code == 302
    other = {**GOOD, "context": "quotes", "backend_url": "http://10.8.1.1/quotes"}
    response = client_for(world.publisher).post(url(world.org, "new/"), other)
    assert response.status_code == 302
    assert Api.objects.count() == 2


@pytest.mark.django_db
def test_with_private_networks_allowed_the_form_accepts_loopback(
    world, client_for, settings
):
    settings.BACKEND_PRIVATE_NETWORKS = "allow"
    response = create(world, client_for, "http://127.0.0.1:8100/weather")
    assert response.status_code == 302


@pytest.mark.django_db
def test_an_api_saved_before_the_policy_cannot_be_saved_again_unchanged(
    world, client_for, deny
):
    api = make_api(world.org, backend_url="https://93.184.215.14/")
    Api.objects.filter(pk=api.pk).update(backend_url="http://127.0.0.1:12111/")
    response = client_for(world.publisher).post(
        url(world.org, f"{api.pk}/edit/"),
        {**GOOD, "name": "Renamed", "backend_url": "http://127.0.0.1:12111/"},
    )
    assert response.status_code == 200
    assert "loopback" in field_error(response.content, "backend_url")
    api.refresh_from_db()
    assert api.name == "Weather API"


@pytest.mark.django_db
def test_the_service_refuses_a_literal_private_address_without_dns(world, deny):
    """Writes that do not come through the form (the admin, a future REST API) are
    checked too, without waiting on DNS: IP literals and localhost names."""
    for backend_url in ("http://169.254.169.254/", "http://api.localhost/"):
        with pytest.raises(ValidationError) as exc:
            services.api_create(
                organization=world.org,
                actor=world.publisher,
                name="Weather",
                version="v1",
                context="weather",
                backend_url=backend_url,
            )
        assert "backend_url" in exc.value.message_dict
    assert Api.objects.count() == 0


@pytest.mark.django_db
def test_the_admin_form_applies_the_policy(admin_client, world, deny):
    api = make_api(world.org, backend_url="https://93.184.215.14/")
    page = f"/admin/publisher/api/{api.pk}/change/"
    form = admin_client.get(page).context["adminform"].form
    data = {
        name: form.initial.get(name) or ""
        for name in ("name", "version", "context", "description", "documentation")
    }
    data.update(backend_url="http://10.0.0.1/", visibility=api.visibility)
    data.update(
        {
            f"{prefix}-{field}": value
            for prefix in ("offers", "state_changes")
            for field, value in (
                ("TOTAL_FORMS", "0"),
                ("INITIAL_FORMS", "0"),
                ("MIN_NUM_FORMS", "0"),
                ("MAX_NUM_FORMS", "1000"),
            )
        }
    )
    response = admin_client.post(page, data)
    assert response.status_code == 200
    assert "private address" in str(response.context["adminform"].form.errors)
    api.refresh_from_db()
    assert api.backend_url == "https://93.184.215.14/"


@pytest.mark.django_db
def test_the_api_page_tells_the_publisher_about_a_refused_connection(
    world, client_for, deny
):
    api = make_api(world.org, backend_url="https://93.184.215.14/")
    client = client_for(world.publisher)
    page = url(world.org, f"{api.pk}/")
    assert b'id="backend-refused"' not in client.get(page).content

    services.api_backend_refusal_record(
        api_id=api.pk, address="127.0.0.1", at=datetime(2027, 1, 15, 10, tzinfo=UTC)
    )
    notice = by_id(client.get(page).content, "backend-refused").text()
    assert "refused to connect" in notice
    assert "127.0.0.1" in notice
    assert "2027-01-15 10:00" in notice
    assert "backend_forbidden" in notice

    # Saving the API (its backend URL checked again) clears the notice.
    client.post(
        url(world.org, f"{api.pk}/edit/"),
        {**GOOD, "backend_url": "https://93.184.215.15/"},
    )
    api.refresh_from_db()
    assert (api.backend_refused_at, api.backend_refused_address) == (None, "")
    assert b'id="backend-refused"' not in client.get(page).content
    assert api.state == ApiState.CREATED
