"""`{% shared_fragment %}`: a part of a store's page rendered once and kept in the
page cache, per organization and audience, never across them, and retired by a
change to the catalog."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.template import TemplateSyntaxError, engines

from store import page_cache

pytestmark = pytest.mark.django_db

FRAGMENT = (
    '{% load store_tags %}<p>{% shared_fragment "test-part" audience key %}'
    "{{ text }}{% endshared_fragment %}</p>"
)


def render(org, audience, text: str, key: int = 1, source: str = FRAGMENT) -> str:
    template = engines["django"].from_string(source)
    return template.render(
        {
            "tenant": SimpleNamespace(organization=org),
            "audience": audience,
            "key": key,
            "text": text,
        }
    )


def test_a_fragment_is_rendered_once_per_organization_audience_and_key(world):
    org, other = world.org, world.other_org
    page_cache.catalog_changed(org.pk)  # nothing of another test's with these ids
    page_cache.catalog_changed(other.pk)
    assert render(org, page_cache.PUBLIC, "first") == "<p>first</p>"
    assert render(org, page_cache.PUBLIC, "second") == "<p>first</p>"
    # Never another organization's, another audience's or another key's.
    assert render(other, page_cache.PUBLIC, "theirs") == "<p>theirs</p>"
    assert render(org, page_cache.RESTRICTED, "approved") == "<p>approved</p>"
    assert render(org, page_cache.PUBLIC, "key 2", key=2) == "<p>key 2</p>"
    assert render(org, page_cache.PUBLIC, "again") == "<p>first</p>"
    assert render(other, page_cache.PUBLIC, "again") == "<p>theirs</p>"


def test_a_change_to_the_catalog_retires_the_organizations_fragments(world):
    org, other = world.org, world.other_org
    page_cache.catalog_changed(org.pk)  # nothing of another test's with these ids
    page_cache.catalog_changed(other.pk)
    assert render(org, page_cache.PUBLIC, "before") == "<p>before</p>"
    assert render(other, page_cache.PUBLIC, "theirs") == "<p>theirs</p>"
    page_cache.catalog_changed(org.pk)
    assert render(org, page_cache.PUBLIC, "after") == "<p>after</p>"
    assert render(other, page_cache.PUBLIC, "still") == "<p>theirs</p>"


@pytest.mark.parametrize("audience", ["", None, "everyone"])
def test_a_fragment_without_an_audience_is_refused(world, audience):
    with pytest.raises(ValueError, match="no audience"):
        render(world.org, audience, "text")


def test_a_csrf_token_in_a_fragment_is_refused_when_the_template_loads(world):
    source = (
        '{% load store_tags %}{% shared_fragment "form" audience %}'
        "{% csrf_token %}{% endshared_fragment %}"
    )
    with pytest.raises(TemplateSyntaxError, match="CSRF"):
        engines["django"].from_string(source)
