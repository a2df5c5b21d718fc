"""Every error page (400, 403, 404, 500, a failed CSRF check) uses apimon's layout,
says what happened and links somewhere useful. The suite runs with DEBUG off, as
production does (tests/test_production.py serves them from a DEBUG=0 process)."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils.functional import SimpleLazyObject

from apimon.errors import server_error

LAYOUT = '<nav class="navbar"'


def reload_link(html: str) -> str:
    return re.search(r'<a class="btn" href="([^"]*)">Reload the page', html)[1]


def test_the_suite_runs_the_error_handlers_as_production_does():
    assert settings.DEBUG is False
    assert settings.CSRF_FAILURE_VIEW == "apimon.errors.csrf_failure"


def test_a_publisher_opening_monetization_gets_a_403_page_that_says_why(
    world, client_for
):
    response = client_for(world.publisher).get(
        reverse("monetization:status", args=[world.org.slug])
    )

    assert response.status_code == 403
    html = response.content.decode()
    assert LAYOUT in html and "apimon.css" in html
    assert "You may not open this page" in html
    assert "You are <strong>publisher</strong> in Acme" in html
    assert f'href="{reverse("tenant-home", args=[world.org.slug])}"' in html
    # The navbar still shows where the publisher is.
    assert 'Acme <span class="badge">publisher</span>' in html


def test_a_subscriber_gets_the_same_page(world, client_for):
    response = client_for(world.subscriber).get(
        reverse("publisher:api-list", args=[world.org.slug])
    )
    assert response.status_code == 403
    assert "You are <strong>subscriber</strong> in Acme" in response.content.decode()


def test_an_outsider_gets_a_404_page_that_names_no_organization(world, client_for):
    response = client_for(world.outsider).get(
        reverse("monetization:status", args=[world.org.slug])
    )

    assert response.status_code == 404
    html = response.content.decode()
    assert LAYOUT in html and "Page not found" in html
    assert "Acme" not in html
    assert f'href="{reverse("home")}"' in html


@pytest.mark.django_db
def test_an_unknown_address_gets_the_404_page_with_a_way_back(client):
    response = client.get("/no/such/page/")

    assert response.status_code == 404
    html = response.content.decode()
    assert LAYOUT in html and "Page not found" in html
    assert f'href="{reverse("landing")}"' in html
    assert f'href="{reverse("account_login")}"' in html


@pytest.mark.django_db
def test_a_bad_request_gets_the_400_page(client):
    response = client.get("/", HTTP_HOST="not-allowed.example")

    assert response.status_code == 400
    html = response.content.decode()
    assert LAYOUT in html and "This request could not be understood" in html


def test_a_form_without_its_csrf_token_gets_the_csrf_page(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.owner)
    page = reverse("members", args=[world.org.slug])

    response = client.post(
        page, {"email": "x@example.test", "role": "publisher"}, HTTP_REFERER=page
    )

    assert response.status_code == 403
    html = response.content.decode()
    assert LAYOUT in html and "This form has expired" in html
    assert "Nothing was changed" in html
    assert reload_link(html) == page
    assert not world.org.invitations.exists()


def test_a_csrf_failure_from_another_site_links_home_not_back(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.owner)
    response = client.post(
        reverse("members", args=[world.org.slug]),
        {},
        HTTP_REFERER="https://evil.example/form",
    )
    assert response.status_code == 403
    assert reload_link(response.content.decode()) == reverse("home")


@pytest.mark.urls("tests.apimon.error_urls")
@pytest.mark.django_db
def test_a_view_that_raises_gets_the_500_page():
    response = Client(raise_request_exception=False).get("/broken/")

    assert response.status_code == 500
    html = response.content.decode()
    assert LAYOUT in html and "Something went wrong on our side" in html
    assert f'href="{reverse("landing")}"' in html


def test_the_500_page_renders_without_a_database_or_a_user():
    # No django_db mark: any query fails the test. The user is a lazy object that
    # blows up if anything (a context processor) reads it.
    request = RequestFactory().get("/t/acme/store/")

    def no_user():
        raise AssertionError("the 500 page read the user")

    request.user = SimpleLazyObject(no_user)
    response = server_error(request)

    assert response.status_code == 500
    html = response.content.decode()
    assert LAYOUT in html and "Something went wrong on our side" in html


def test_the_500_page_falls_back_to_plain_html_when_the_layout_fails(settings):
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [],
            "APP_DIRS": False,
        }
    ]
    response = server_error(RequestFactory().get("/"))

    assert response.status_code == 500
    assert b"Something went wrong on our side" in response.content
