"""Weighted operations typed as OpenAPI operationIds in the meter form: resolved
against the API's document when the meter is saved, shown as typed, errors next to
the field, and resolved again when the publisher replaces or removes the
document (an id that vanished keeps its last resolution, and the pages say so)."""

from __future__ import annotations

import json

import pytest

from publisher.models import MeterSource
from tests.helpers import field_error
from tests.publisher.helpers import make_api
from tests.publisher.test_apis import GOOD as API_FORM
from tests.publisher.test_meters import GOOD, url


def document(**operations: tuple[str, str]) -> dict:
    """An OpenAPI document with one operation per operationId: (method, path)."""
    paths: dict[str, dict] = {}
    for operation_id, (method, path) in operations.items():
        item = paths.setdefault(path, {})
        if "{" in path:
            item["parameters"] = [
                {"name": "id", "in": "path", "required": True, "schema": {}}
            ]
        item[method.lower()] = {
            "operationId": operation_id,
            "responses": {"200": {"description": "OK"}},
        }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Text", "version": "1"},
        "paths": paths,
    }


DOC = document(
    createCompletion=("POST", "/completions"),
    getModel=("GET", "/models/{id}"),
    listModels=("GET", "/models"),
)
CREDITS = {
    **GOOD,
    "key": "credits",
    "display_name": "Credits",
    "unit_label": "credit",
    "display_scale": "1",
    "source": MeterSource.OPERATIONS,
}


def api_page(client, api) -> str:
    return client.get(
        f"/t/{api.organization.slug}/publisher/apis/{api.pk}/"
    ).content.decode()


def replace_document(client, api, spec) -> None:
    """The publisher uploads a new document on the API's edit page (or removes it
    with spec=None)."""
    form = {**API_FORM, "tags": ""}
    if spec is None:
        form["openapi_remove"] = "on"
    else:
        form["openapi_text"] = json.dumps(spec)
    answer = client.post(
        f"/t/{api.organization.slug}/publisher/apis/{api.pk}/edit/", form
    )
    assert answer.status_code == 302


@pytest.mark.django_db
def test_a_meter_weighs_operations_by_their_operation_id(world, client_for):
    api = make_api(world.org, openapi_spec=DOC)
    client = client_for(world.publisher)
    lines = "createCompletion 5\ngetModel 2\nGET /health 0"

    response = client.post(url(api, "new/"), {**CREDITS, "operations": lines})

    assert response.status_code == 302
    meter = api.meters.get(key="credits")
    assert meter.operations == [
        {
            "method": "POST",
            "path": "/completions",
            "units": 5,
            "operation_id": "createCompletion",
        },
        {
            "method": "GET",
            "path": "/models/{id}",
            "units": 2,
            "operation_id": "getModel",
        },
        {"method": "GET", "path": "/health", "units": 0},
    ]
    # The edit page shows the lines as the publisher typed them.
    edit = client.get(url(api, f"{meter.pk}/"))
    assert edit.context["form"]["operations"].value() == lines
    assert 'id="stale-operations"' not in edit.content.decode()


@pytest.mark.parametrize(
    ("spec", "lines", "message"),
    [
        (
            DOC,
            "GET /health 0\ncreateCompletions 5",
            "Line 2: No operation of the API's OpenAPI document has the operationId "
            "createCompletions (it has createCompletion, ",
        ),
        (None, "createCompletion 5", "this API has no OpenAPI document"),
        (
            DOC,
            "POST /completions 1\ncreateCompletion 5",
            "Line 2: createCompletion (POST /completions) is listed twice.",
        ),
    ],
)
@pytest.mark.django_db
def test_a_bad_operation_id_is_an_error_next_to_the_field(
    world, client_for, spec, lines, message
):
    api = make_api(world.org, openapi_spec=spec)

    response = client_for(world.publisher).post(
        url(api, "new/"), {**CREDITS, "operations": lines}
    )

    assert response.status_code == 200
    assert message in field_error(response.content, "operations")
    assert not api.meters.filter(key="credits").exists()


@pytest.mark.django_db
def test_a_new_document_moves_an_operation_id_and_one_that_vanished_is_flagged(
    world, client_for
):
    api = make_api(world.org, openapi_spec=DOC)
    client = client_for(world.publisher)
    client.post(
        url(api, "new/"), {**CREDITS, "operations": "createCompletion 5\ngetModel 2"}
    )
    meter = api.meters.get(key="credits")

    # The backend moved completions under /v2 and no longer has getModel.
    replace_document(
        client,
        api,
        document(
            createCompletion=("POST", "/v2/completions"),
            listModels=("GET", "/models"),
        ),
    )

    meter.refresh_from_db()
    assert [(o["method"], o["path"]) for o in meter.operations] == [
        ("POST", "/v2/completions"),
        ("GET", "/models/{id}"),  # its last resolution
    ]
    warning = (
        "getModel: it is no longer in the API&#x27;s OpenAPI document; the meter "
        "still weighs GET /models/{id} (its last resolution)."
    )
    assert warning in api_page(client, api)
    edit = client.get(url(api, f"{meter.pk}/"))
    assert warning in edit.content.decode()
    # Saving the meter again asks for the line to be fixed, next to the field.
    lines = edit.context["form"]["operations"].value()
    again = client.post(url(api, f"{meter.pk}/"), {**CREDITS, "operations": lines})
    assert "operationId getModel" in field_error(again.content, "operations")
    fixed = client.post(
        url(api, f"{meter.pk}/"), {**CREDITS, "operations": "createCompletion 5"}
    )
    assert fixed.status_code == 302
    assert 'id="stale-operations"' not in api_page(client, api)


@pytest.mark.django_db
def test_removing_the_document_keeps_the_resolutions_and_says_so(world, client_for):
    api = make_api(world.org, openapi_spec=DOC)
    client = client_for(world.publisher)
    client.post(url(api, "new/"), {**CREDITS, "operations": "createCompletion 5"})

    replace_document(client, api, None)

    meter = api.meters.get(key="credits")
    assert (meter.operations[0]["method"], meter.operations[0]["path"]) == (
        "POST",
        "/completions",
    )
    assert "the API has no OpenAPI document any more" in api_page(client, api)
