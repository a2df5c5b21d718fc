"""The store's own form widgets write what Django's would."""

from __future__ import annotations

import pytest
from django import forms
from django.utils.safestring import mark_safe

from store.forms import PlainSelect

CHOICES = [
    ("", "—"),
    (1, "Weather dashboard"),
    (2, 'Tom & Jerry\'s "<app>"'),
    ("a&b", mark_safe("<b>safe</b>")),
    ("Group <1>", [(3, "In a group"), (4, "Also")]),
]


@pytest.mark.parametrize("value", [None, 2, "a&b", 4, [1, 4]])
@pytest.mark.parametrize(
    "attrs",
    [
        None,
        {"id": "id_application", "required": True, "aria-describedby": "id_help"},
        {"disabled": False, "data-x": 'q"uote & <tag>', "autofocus": True},
    ],
)
def test_the_plain_select_writes_what_djangos_templates_write(value, attrs):
    for multiple in (False, True):
        django_select = forms.Select(choices=CHOICES)
        plain = PlainSelect(choices=CHOICES)
        if multiple:
            django_select.allow_multiple_selected = True
            plain.allow_multiple_selected = True
        name = 'application"&'
        expected = django_select.render(name, value, attrs)
        assert plain.render(name, value, attrs) == expected
