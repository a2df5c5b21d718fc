"""No input gives a 500, and a refusal changes nothing: every route of the URLconf,
as every role, with generated form data and query strings.

For each route (tests/fuzz/routes.py finds them, their path parameters and the fields
their views and pages read), each example picks real or garbage ids for the path,
GET or POST, and for each role (anonymous, a subscriber, a publisher, an owner of
the organization, the owner of another organization) a set of fields with hostile
values: NUL and control characters, integers past any database range, dates outside
the calendar, very long and deeply bracketed strings, several values for one field,
missing fields, unknown fields, files. Every answer must be below 500; when it is a
refusal (a 4xx, a form shown with errors, a warning or error message) no row of
apimon's tables may have been added or removed.

Examples per route: APIMON_FUZZ_EXAMPLES (default 6, which keeps the whole fuzz
suite within a few minutes on PostgreSQL). The hypothesis profile of
tests/conftest.py is derandomized, so a failure reproduces;
`HYPOTHESIS_PROFILE=explore APIMON_FUZZ_EXAMPLES=100` searches longer with fresh
randomness. A failure prints the smallest input that fails; each one found became
a regression test next to the code it broke.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.forms import MeterPriceForm
from publisher.meters import requests_meter
from tests.fuzz.conftest import EXAMPLES, ROLES, count_changes, is_refusal, row_counts
from tests.fuzz.routes import Fields, code_fields, html_fields, walk
from tests.fuzz.strategies import form_data

pytestmark = pytest.mark.django_db

# Readiness answers 503 by design when the background jobs have not run (in the test
# process they never do): its status is the report, not a failure. It reads no input.
DOCUMENTED_503 = {"/readyz"}
ROUTES = [r for r in walk() if str(r) not in DOCUMENTED_503]
PAGES = [r for r in ROUTES if not r.is_admin]
ADMIN = [r for r in ROUTES if r.is_admin]
ADMIN_VALUES = {"app_label": ["apimon", "publisher", "store", "billing", "gateway"]}


def send(client, method: str, url: str, data: dict):
    if method == "GET":
        query = {
            k: v if isinstance(v, str | list) else getattr(v, "name", "")
            for k, v in data.items()
        }
        response = client.get(url, query)
    else:
        response = client.post(url, data)
    if getattr(response, "streaming", False):
        b"".join(response.streaming_content)  # errors while streaming count too
    return response


def check(client, method: str, url: str, data: dict) -> None:
    before = row_counts()
    response = send(client, method, url, data)
    assert response.status_code < 500, (method, url, data)
    if is_refusal(response):
        changed = count_changes(before, row_counts())
        assert changed == {}, (response.status_code, method, url, data, changed)


def page_fields(fuzz_world, route) -> dict[str, Fields]:
    """Per role: the fields the view's code reads and those its page shows."""
    from_code = code_fields(route.callback)
    url = route.url(
        {name: fuzz_world.path_values[name][0] for name in route.parameters}
    )
    fields = {}
    for role, client in fuzz_world.clients.items():
        response = send(client, "GET", url, {})
        assert response.status_code < 500, (role, url)
        content_type = response.get("Content-Type", "")
        if response.status_code == 200 and content_type.startswith("text/html"):
            fields[role] = from_code.merge(html_fields(response.content.decode()))
        else:
            fields[role] = from_code
    return fields


def test_the_walk_finds_every_kind_of_route():
    names = {r.name for r in ROUTES}
    assert {"tier-create", "subscribe", "usage-events", "webhook"} <= names
    assert {"account_login", "members"} <= names
    assert ADMIN


def test_fields_are_read_from_forms_views_and_pages():
    by_name = {r.name: r for r in PAGES}
    tier = code_fields(by_name["tier-create"].callback).options
    assert {"quota_limit", "rate_limit", "fixed_fee", "currency"} <= set(tier)
    # A meter's price row (requests included) is read from the page it renders in.
    row = html_fields(MeterPriceForm(meter=requests_meter(None)).as_div()).options
    assert "GRADUATED" in row["meter-requests-pricing_model"]
    assert "action" in code_fields(by_name["member-update"].callback).options
    assert (
        "q"
        in html_fields(
            '<form><input name="q"><select name="s"><option value="a"></select></form>'
        ).options
    )


@pytest.mark.parametrize("route", PAGES, ids=str)
def test_no_input_gives_a_500_and_a_refusal_changes_nothing(fuzz_world, route):
    fields = page_fields(fuzz_world, route)

    @settings(max_examples=EXAMPLES)
    @given(data=st.data())
    def requests(data):
        path = {
            name: data.draw(st.sampled_from(fuzz_world.path_values[name]), label=name)
            for name in route.parameters
        }
        url = route.url(path)
        method = data.draw(st.sampled_from(["GET", "POST"]), label="method")
        with fuzz_world.example():
            for role in ROLES:
                payload = data.draw(form_data(fields[role]), label=role)
                check(fuzz_world.clients[role], method, url, payload)

    requests()


@pytest.mark.parametrize("role", [*ROLES, "operator"])
def test_no_input_gives_a_500_in_the_admin(fuzz_world, role):
    """The admin's routes: for the tenants' roles a redirect to its login page;
    for the operator (a superuser) its own forms."""
    client = fuzz_world.clients.get(role)
    if role == "operator":
        from django.test import Client

        operator = get_user_model().objects.create_superuser(
            email="operator@apimon.test", password="x"
        )
        client = Client()

    @settings(max_examples=EXAMPLES * 4)
    @given(data=st.data())
    def requests(data):
        route = data.draw(st.sampled_from(ADMIN), label="route")
        url = route.url(
            {
                name: data.draw(
                    st.sampled_from(ADMIN_VALUES.get(name, ["1", "0", "x"]))
                )
                for name in route.parameters
            }
        )
        method = data.draw(st.sampled_from(["GET", "POST"]), label="method")
        payload = data.draw(form_data(code_fields(route.callback)), label="data")
        with fuzz_world.example():
            if role == "operator":
                client.force_login(
                    operator, backend="django.contrib.auth.backends.ModelBackend"
                )
            check(client, method, url, payload)

    requests()
