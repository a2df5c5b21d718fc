"""Weighted operations: the weight of a call, matched on a segment tree; lines typed
as OpenAPI operationIds, resolved against the API's document."""

from __future__ import annotations

import pytest

from publisher.operations import (
    Matcher,
    OperationsError,
    as_text,
    parse,
    reresolve,
    stale,
)

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
        "Line 2: write METHOD /path units (POST /search 5) or operationId units "
        "(search 5).",
        "Line 3: Units are a whole number from 0 to 1,000,000.",
    ]


IDS = {
    "createCompletion": ("POST", "/completions"),
    "getItem": ("GET", "/items/{id}"),
    "listItems": ("GET", "/items"),
    "traceAll": ("TRACE", "/all"),
    "getFile": ("GET", "/files/{name}.json"),
}


def test_an_operation_id_is_resolved_to_its_method_and_path():
    ops = parse("createCompletion 5\ngetItem 2\nGET /items/export 7", IDS)

    assert ops == [
        {
            "method": "POST",
            "path": "/completions",
            "units": 5,
            "operation_id": "createCompletion",
        },
        {"method": "GET", "path": "/items/{id}", "units": 2, "operation_id": "getItem"},
        {"method": "GET", "path": "/items/export", "units": 7},
    ]
    # The form shows the lines as typed; matching is by method and path.
    assert as_text(ops) == "createCompletion 5\ngetItem 2\nGET /items/export 7"
    matcher = Matcher.compile(ops)
    assert matcher.units("POST", "/completions") == 5
    assert matcher.units("GET", "/items/42") == 2
    assert matcher.units("GET", "/items/export") == 7
    assert matcher.units("GET", "/completions") == 1


def test_an_unknown_operation_id_names_the_line_and_some_known_ids():
    with pytest.raises(OperationsError) as caught:
        parse("GET /a 1\ncreateCompletions 5", IDS)

    (message,) = caught.value.messages
    assert message.startswith(
        "Line 2: No operation of the API's OpenAPI document has the operationId "
        "createCompletions (it has createCompletion, "
    )
    assert "…" not in message  # five ids: all listed
    many = {f"op{i}": ("GET", f"/p{i}") for i in range(30)}
    with pytest.raises(OperationsError) as caught:
        parse("op1x 5", many)
    assert caught.value.messages[0].endswith(", …).")
    assert caught.value.messages[0].count(", ") == 5  # five ids, then "…"


def test_an_operation_id_without_a_document_is_a_clear_error():
    with pytest.raises(OperationsError) as caught:
        parse("createCompletion 5", None)
    assert caught.value.messages == [
        "Line 1: createCompletion would be an OpenAPI operationId, but this API has "
        "no OpenAPI document: add one on the API's page, or write METHOD /path units."
    ]
    with pytest.raises(OperationsError) as caught:
        parse("createCompletion 5", {})
    assert "names no operationId" in caught.value.messages[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("createCompletion x", "Line 1: createCompletion is POST /completions: Units"),
        ("traceAll 1", "Line 1: traceAll is TRACE /all: TRACE is not a method"),
        ("getFile 1", "Line 1: getFile is GET /files/{name}.json: {name}.json is"),
        (
            "POST /completions 1\ncreateCompletion 2",
            "Line 2: createCompletion (POST /completions) is listed twice.",
        ),
        ("POST /completions", "Line 1: write METHOD /path units"),
        ("GET items", "Line 1: write METHOD /path units"),
    ],
)
def test_a_bad_operation_id_line_is_named(text, message):
    with pytest.raises(OperationsError) as caught:
        parse(text, IDS)
    assert caught.value.messages[0].startswith(message)


def test_a_new_document_moves_an_operation_id_and_a_vanished_one_stays():
    ops = parse("createCompletion 5\ngetItem 2\nGET /status 0", IDS)
    new = {
        "createCompletion": ("POST", "/v2/completions"),
        "listItems": IDS["listItems"],
    }

    moved = reresolve(ops, new)

    assert [(o["method"], o["path"]) for o in moved] == [
        ("POST", "/v2/completions"),
        ("GET", "/items/{id}"),  # getItem vanished: its last resolution
        ("GET", "/status"),
    ]
    assert ops[0]["path"] == "/completions"  # the list given is not changed
    assert stale(moved, new) == [
        "getItem: it is no longer in the API's OpenAPI document; the meter still "
        "weighs GET /items/{id} (its last resolution). Edit the meter to change "
        "the line."
    ]
    assert stale(ops, IDS) == []  # resolved by its own document: nothing to say
    assert "no OpenAPI document any more" in stale(moved, None)[0]
    assert reresolve(moved, None) == moved


def test_a_move_onto_another_line_keeps_the_last_resolution():
    ops = parse("createCompletion 5\nGET /status 0", IDS)
    new = {"createCompletion": ("GET", "/status")}

    assert reresolve(ops, new) == ops
    assert "now has it as GET /status" in stale(ops, new)[0]
