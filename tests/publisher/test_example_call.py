"""The store's example `curl` uses a real operation of the API's OpenAPI document:
the first GET without path parameters, else the first GET with them filled."""

from __future__ import annotations

from publisher.openapi import example_call


def doc(paths: dict) -> dict:
    return {"openapi": "3.0.3", "info": {"title": "T", "version": "1"}, "paths": paths}


def get(*parameters) -> dict:
    return {
        "get": {
            "responses": {"200": {"description": "ok"}},
            "parameters": list(parameters),
        }
    }


def test_the_first_get_without_path_parameters_is_the_example():
    spec = doc(
        {
            "/search": {"post": {"responses": {"200": {"description": "ok"}}}},
            "/items/{id}": get({"name": "id", "in": "path", "required": True}),
            "/status": get(),
            "/later": get(),
        }
    )
    assert example_call(spec) == "/status"


def test_path_parameters_are_filled_from_their_examples():
    spec = doc(
        {
            "/items/{id}/{kind}": {
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "example": 42}
                ],
                **get(
                    {
                        "name": "kind",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": ["full", "short"]},
                    },
                    {
                        "name": "lang",
                        "in": "query",
                        "required": True,
                        "example": "pt BR",
                    },
                ),
            }
        }
    )
    assert example_call(spec) == "/items/42/full?lang=pt%20BR"


def test_a_path_parameter_without_an_example_is_a_placeholder():
    spec = doc({"/items/{id}": get({"name": "id", "in": "path", "required": True})})
    assert example_call(spec) == "/items/<id>"


def test_no_document_or_no_get_gives_no_example():
    assert example_call(None) is None
    assert example_call({"paths": "nonsense"}) is None
    assert example_call(doc({"/x": {"post": {}}})) is None
