"""Weighted operations: the weight of a call, matched on a segment tree."""

from __future__ import annotations

import pytest

from publisher.operations import Matcher, OperationsError, parse

OPS = parse(
    """
    POST /search 5
    GET /status 0
    GET /items/{id} 2
    GET /items/export 7
    * /admin/{x}/run 9
    DELETE /items/{id} 3
    """
)


@pytest.mark.parametrize(
    ("method", "path", "units"),
    [
        ("POST", "/search", 5),
        ("post", "search/", 5),  # the method's case and slashes do not matter
        ("GET", "/search", 1),  # another method: unlisted
        ("GET", "/status", 0),
        ("GET", "/items/42", 2),
        ("GET", "/items/export", 7),  # a literal beats {id}
        ("DELETE", "/items/export", 3),  # no literal for DELETE: {id}
        ("GET", "/items", 1),
        ("GET", "/items/42/more", 1),
        ("PATCH", "/admin/a/run", 9),  # * is any method
        ("GET", "/", 1),
        ("GET", "", 1),
    ],
)
def test_a_call_weighs_its_operations_units_or_one(method, path, units):
    assert Matcher.compile(OPS).units(method, path) == units


def test_no_operations_weigh_one():
    assert Matcher.compile([]).units("GET", "/anything") == 1


def test_a_method_beats_any_method():
    ops = parse("* /a 4\nGET /a 6")
    assert Matcher.compile(ops).units("GET", "/a") == 6
    assert Matcher.compile(ops).units("PUT", "/a") == 4


def test_every_bad_line_is_named():
    with pytest.raises(OperationsError) as caught:
        parse("GET /a 1\nnonsense\nGET /b x")
    assert caught.value.messages == [
        "Line 2: write METHOD /path units, e.g. POST /search 5.",
        "Line 3: Units are a whole number from 0 to 1,000,000.",
    ]
