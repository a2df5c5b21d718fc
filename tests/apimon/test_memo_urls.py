"""Every template's `{% url %}` remembers its answers
(apimon/templatetags/memo_urls.py): it must answer what Django's tag answers,
again and again, and follow a change of URLconf or script prefix."""

from __future__ import annotations

import pytest
from django.template import Context, Template
from django.test import override_settings
from django.urls import NoReverseMatch, path, reverse, set_script_prefix


def _view(request):  # pragma: no cover - only reversed
    raise AssertionError


# A URLconf of this module's own, for the test that switches to it.
urlpatterns = [
    path("elsewhere/home/", _view, name="home"),
    path("elsewhere/t/<slug:org_slug>/", _view, name="tenant-home"),
]


def render(source: str, **context) -> str:
    return Template(source).render(Context(context))


def test_url_answers_what_django_reverses_every_time():
    source = (
        "{% url 'home' %} {% url 'tenant-home' slug %} "
        "{% url 'publisher:api-detail' slug api_id %} "
        "{% url 'publisher:api-detail' org_slug=slug api_id=api_id %}"
    )
    expected = " ".join(
        [
            reverse("home"),
            reverse("tenant-home", args=["acme"]),
            reverse("publisher:api-detail", args=["acme", 7]),
            reverse("publisher:api-detail", kwargs={"org_slug": "acme", "api_id": 7}),
        ]
    )
    for _ in range(3):
        assert render(source, slug="acme", api_id=7) == expected
    # Other arguments, other answers (not the first one's).
    assert render(source, slug="globex", api_id=8) == expected.replace(
        "acme", "globex"
    ).replace("/7/", "/8/")


def test_an_argument_that_is_not_a_plain_value_is_reversed_each_time():
    class Slug:  # an object the URL takes as str(): another string each time
        calls = 0

        def __str__(self):
            Slug.calls += 1
            return f"org{Slug.calls}"

    slug = Slug()
    first = render("{% url 'tenant-home' slug %}", slug=slug)
    again = render("{% url 'tenant-home' slug %}", slug=slug)
    assert first.startswith("/t/org") and again.startswith("/t/org")
    assert again != first
    # True is not 1: it would make "True", and must not share 1's answer.
    assert render("{% url 'publisher:api-detail' 'acme' 1 %}") == reverse(
        "publisher:api-detail", args=["acme", 1]
    )
    with pytest.raises(NoReverseMatch):
        render("{% url 'publisher:api-detail' 'acme' flag %}", flag=True)


def test_a_url_that_does_not_exist_fails_every_time_and_as_var_answers_empty():
    for _ in range(2):
        with pytest.raises(NoReverseMatch):
            render("{% url 'no-such-page' %}")
    source = "{% url 'no-such-page' as link %}[{{ link }}]"
    assert render(source) == "[]"
    assert render(source) == "[]"
    assert render("{% url 'home' as link %}[{{ link }}]") == f"[{reverse('home')}]"


def test_url_follows_a_new_urlconf_and_script_prefix():
    assert render("{% url 'home' %}") == "/home/"
    with override_settings(ROOT_URLCONF=__name__):
        assert render("{% url 'home' %}") == "/elsewhere/home/"
        assert render("{% url 'tenant-home' 'acme' %}") == "/elsewhere/t/acme/"
    assert render("{% url 'home' %}") == "/home/"
    set_script_prefix("/apimon/")
    try:
        assert render("{% url 'home' %}") == "/apimon/home/"
    finally:
        set_script_prefix("/")
    assert render("{% url 'home' %}") == "/home/"


def test_url_escapes_its_answer_as_django_does():
    # An invitation token may hold "&", which a URL keeps and HTML escapes.
    url = reverse("invitation-accept", args=["a&b"])
    assert url == "/invitations/a&b/"
    source = "{% url 'invitation-accept' token %}"
    for _ in range(2):
        assert render(source, token="a&b") == "/invitations/a&amp;b/"
        assert render(
            "{% autoescape off %}" + source + "{% endautoescape %}", token="a&b"
        ) == ("/invitations/a&b/")
