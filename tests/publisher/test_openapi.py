"""OpenAPI documents: upload or paste, validation, the operations table."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from publisher.models import Api
from publisher.openapi import MAX_BYTES, openapi_operations, parse_openapi
from tests.helpers import field_error
from tests.publisher.helpers import make_api
from tests.publisher.test_apis import GOOD, url

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "Weather", "version": "1"},
    "paths": {
        "/current": {
            "get": {
                "summary": "Current weather",
                "responses": {"200": {"description": "OK"}},
            }
        },
        "/alerts/{id}": {
            "parameters": [
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
            ],
            "get": {
                "summary": "One alert",
                "responses": {"200": {"description": "OK"}},
            },
            "delete": {
                "description": "Remove an alert\nfor good",
                "deprecated": True,
                "responses": {"204": {"description": "Gone"}},
            },
        },
    },
}
YAML = """\
openapi: 3.1.0
info: {title: Quotes, version: "1"}
paths:
  /random:
    get:
      summary: A random quote
      responses:
        200: {description: OK}
"""
SWAGGER = {
    "swagger": "2.0",
    "info": {"title": "Old", "version": "1"},
    "paths": {
        "/x": {
            "post": {"summary": "Make x", "responses": {"200": {"description": "OK"}}}
        }
    },
}


def upload(name, content):
    if isinstance(content, dict):
        content = json.dumps(content)
    if isinstance(content, str):
        content = content.encode()
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


@pytest.mark.parametrize(
    ("name", "content", "operations"),
    [
        (
            "weather.json",
            SPEC,
            [
                ("GET", "/current", "Current weather"),
                ("GET", "/alerts/{id}", "One alert"),
                ("DELETE", "/alerts/{id}", "Remove an alert"),
            ],
        ),
        ("quotes.yaml", YAML, [("GET", "/random", "A random quote")]),
        ("old.yml", SWAGGER, [("POST", "/x", "Make x")]),
    ],
)
@pytest.mark.django_db
def test_an_uploaded_document_is_stored_and_listed(
    world, client_for, name, content, operations
):
    client = client_for(world.publisher)
    response = client.post(
        url(world.org, "new/"), {**GOOD, "openapi_file": upload(name, content)}
    )
    assert response.status_code == 302
    api = Api.objects.get()
    assert api.openapi_filename == name
    listed = [
        (o.method, o.path, o.summary) for o in openapi_operations(api.openapi_spec)
    ]
    assert listed == operations
    page = client.get(url(world.org, f"{api.pk}/")).content.decode()
    for method, path, summary in operations:
        assert f'<span class="badge info">{method}</span>' in page
        assert path in page and summary in page


@pytest.mark.django_db
def test_a_pasted_document_is_accepted(world, client_for):
    client_for(world.publisher).post(
        url(world.org, "new/"), {**GOOD, "openapi_text": YAML}
    )
    api = Api.objects.get()
    # YAML's integer response code is stored as JSON's string key.
    assert api.openapi_spec["paths"]["/random"]["get"]["responses"] == {
        "200": {"description": "OK"}
    }


def nested_spec(depth: int) -> dict:
    """A valid document whose one schema nests `depth` objects in each other."""
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return {
        **SPEC,
        "components": {"schemas": {"Deep": schema}},
    }


DEEP_JSON = "[" * 100_000 + "]" * 100_000
DEEP_YAML = "".join(f"{'  ' * i}a:\n" for i in range(500)) + "  " * 500 + "b: 1\n"


NOT_OPENAPI = {"info": {"title": "x", "version": "1"}, "paths": {}}
BAD_OPERATION = {
    "openapi": "3.0.0",
    "info": {"title": "x", "version": "1"},
    "paths": {"/a": {"get": {}}},
}
REMOTE_REF = {
    "openapi": "3.0.0",
    "info": {"title": "x", "version": "1"},
    "paths": {
        "/a": {"get": {"responses": {"200": {"$ref": "http://169.254.169.254/x"}}}}
    },
}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.json", "{not json", "Not valid JSON"),
        ("a.yaml", "a: [1, 2", "Not valid YAML or JSON"),
        ("a.json", NOT_OPENAPI, "Not an OpenAPI 3.x or Swagger 2.0 document"),
        ("a.json", {"swagger": "1.2", "info": {}, "paths": {}}, "Not an OpenAPI"),
        ("a.json", {"openapi": "3.0.0", "paths": {}}, "no 'info'"),
        ("a.json", BAD_OPERATION, "'responses' is a required property"),
        ("a.json", REMOTE_REF, "Only local references"),
        ("a.yaml", "a: &x [1]\nb: *x\n", "aliases"),
        ("a.yaml", "- 1\n- 2\n", "must be a JSON or YAML object"),
        ("a.txt", SPEC, "Upload a .json, .yaml or .yml file"),
        ("a.json", b"\xff\xfe\x00bad", "not UTF-8"),
        ("a.json", b"", "empty"),
        # Nested past the limit (a RecursionError before), JSON or YAML.
        ("deep.json", DEEP_JSON, "nested deeper than 64 levels"),
        ("deep.yaml", DEEP_JSON, "nested deeper than 64 levels"),  # flow style
        ("deep.yaml", DEEP_YAML, "nested deeper than 64 levels"),  # block style
        ("deep.json", nested_spec(200), "nested deeper than 64 levels"),
        # PostgreSQL's jsonb cannot hold a NUL (a database error before).
        ("nul.json", {**SPEC, "info": {"title": "a\x00b", "version": "1"}}, "NUL"),
        ("nul.yaml", YAML.replace("Quotes", '"Quo\\0tes"'), "NUL"),
    ],
)
@pytest.mark.django_db
def test_a_bad_document_is_refused_next_to_the_field_and_nothing_is_saved(
    world, client_for, name, content, message
):
    response = client_for(world.publisher).post(
        url(world.org, "new/"), {**GOOD, "openapi_file": upload(name, content)}
    )
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors["openapi_file"])
    assert message in field_error(response.content, "openapi_file")
    assert Api.objects.count() == 0


@pytest.mark.django_db
def test_a_too_big_file_is_refused(world, client_for):
    big = b"{" + b" " * MAX_BYTES + b"}"
    response = client_for(world.publisher).post(
        url(world.org, "new/"), {**GOOD, "openapi_file": upload("big.json", big)}
    )
    assert "larger than" in " ".join(response.context["form"].errors["openapi_file"])
    assert Api.objects.count() == 0


@pytest.mark.django_db
def test_a_bad_paste_is_refused_next_to_the_paste_field(world, client_for):
    response = client_for(world.publisher).post(
        url(world.org, "new/"), {**GOOD, "openapi_text": "openapi: 3.0.0"}
    )
    assert "no 'info'" in " ".join(response.context["form"].errors["openapi_text"])
    assert Api.objects.count() == 0


@pytest.mark.django_db
def test_editing_keeps_replaces_or_removes_the_document(world, client_for):
    api = make_api(world.org, openapi_spec=SPEC, openapi_filename="w.json")
    client = client_for(world.publisher)
    edit = url(world.org, f"{api.pk}/edit/")
    form = {**GOOD, "tags": ""}

    client.post(edit, form)
    api.refresh_from_db()
    assert api.openapi_spec == SPEC

    client.post(edit, {**form, "openapi_file": upload("q.yaml", YAML)})
    api.refresh_from_db()
    assert (api.openapi_filename, api.openapi_spec["info"]["title"]) == (
        "q.yaml",
        "Quotes",
    )

    client.post(edit, {**form, "openapi_remove": "on"})
    api.refresh_from_db()
    assert (api.openapi_spec, api.openapi_filename) == (None, "")


def test_operations_of_odd_documents_are_empty_not_errors():
    assert openapi_operations(None) == []
    assert openapi_operations({"paths": []}) == []
    assert openapi_operations({"paths": {"/a": "x", "/b": {"get": "y"}}}) == []


def test_yaml_dates_become_strings():
    spec = parse_openapi(YAML.replace('version: "1"', "version: 2024-01-01"))
    assert spec["info"]["version"] == "2024-01-01"


def test_parse_raises_validation_error():
    with pytest.raises(ValidationError):
        parse_openapi("{}", "a.json")


@pytest.mark.django_db
def test_a_document_nested_within_the_limit_is_accepted(world, client_for):
    response = client_for(world.publisher).post(
        url(world.org, "new/"),
        {**GOOD, "openapi_file": upload("ok.json", nested_spec(25))},
    )

    assert response.status_code == 302
    assert Api.objects.get().openapi_spec["components"]["schemas"]["Deep"]
