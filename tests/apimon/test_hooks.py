"""The seams between layers: every question a lower layer asks is answered once the
apps are loaded, and one nobody answers says so instead of returning nothing."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from apimon.hooks import Contributions, Provider
from publisher import hooks as catalog_hooks
from store import hooks as store_hooks


def providers(module) -> list[Provider]:
    return [value for value in vars(module).values() if isinstance(value, Provider)]


@pytest.mark.parametrize(
    "provider",
    providers(catalog_hooks) + providers(store_hooks),
    ids=lambda provider: provider.name,
)
def test_every_question_of_the_catalog_and_the_store_is_answered(provider):
    assert provider.provided


def test_a_question_nobody_answers_says_which_app_is_missing():
    question = Provider[[int], int]("tests.nobody")

    with pytest.raises(ImproperlyConfigured, match=r"tests\.nobody"):
        question(1)

    question.provide(lambda n: n + 1)
    assert question(1) == 2


def test_contributions_are_merged_and_registered_once():
    figures = Contributions[[int]]("tests.figures")

    def doubled(n):
        return {"doubled": 2 * n}

    def squared(n):
        return {"squared": n * n}

    for contributor in (doubled, squared, doubled):
        figures.register(contributor)

    assert figures.collect(3) == {"doubled": 6, "squared": 9}
