"""Names and other one-line fields refuse control characters, next to the field,
in apimon's forms and in model validation (the admin); emails built from names
that the database holds anyway keep a one-line subject."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apimon.forms import OrganizationForm
from apimon.models import Organization
from apimon.validators import SINGLE_LINE_MESSAGE, single_line
from billing.forms import BillingDetailsForm
from gateway.forms import IngestTokenForm
from publisher.forms import ApiForm, TierForm
from store.forms import ApplicationForm, KeyForm

BAD = [
    "Poison\nAPI",
    "tab\there",
    "nul\x00",
    "del\x7f",
    "next\x85line",
    "a\u2028b",
    "a\u2029b",
    "esc\x1b[31m",
]


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize(
    ("form_class", "field"),
    [
        (OrganizationForm, "name"),
        (ApiForm, "name"),
        (ApiForm, "version"),
        (TierForm, "name"),
        (ApplicationForm, "name"),
        (KeyForm, "name"),
        (IngestTokenForm, "name"),
        (BillingDetailsForm, "name"),
        (BillingDetailsForm, "city"),
    ],
)
def test_the_form_shows_the_error_next_to_the_field(world, form_class, field, value):
    kwargs = {"organization": world.org} if form_class in (ApiForm, TierForm) else {}
    form = form_class(data={field: value}, **kwargs)
    assert not form.is_valid()
    errors = form.errors[field]
    assert SINGLE_LINE_MESSAGE in errors or "Null characters are not allowed." in errors


@pytest.mark.parametrize("value", ["del\x7f", "esc\x1b[31m", "bell\x07"])
def test_tags_refuse_control_characters_that_are_not_spaces(world, value):
    form = ApiForm(data={"tags": f"weather, {value}"}, organization=world.org)
    assert not form.is_valid()
    assert SINGLE_LINE_MESSAGE in form.errors["tags"]


def test_line_breaks_between_tags_are_spaces():
    from publisher.validators import parse_tags

    assert parse_tags("live\nweather, forecast\u2028data") == [
        "live weather",
        "forecast data",
    ]


@pytest.mark.parametrize("value", ["Acme Weather", "Ünïcode — ok", "ÄPI v2 (beta)"])
def test_ordinary_names_are_accepted(value):
    form = ApplicationForm(data={"name": value})
    assert form.is_valid(), form.errors
    assert OrganizationForm(data={"name": value}).is_valid()


def test_model_validation_refuses_them_too(world):
    world.org.name = "Acme\r\nBcc: someone"
    with pytest.raises(ValidationError) as refused:
        world.org.full_clean()
    assert refused.value.message_dict == {"name": [SINGLE_LINE_MESSAGE]}


def test_the_admin_shows_the_error_next_to_the_name(client, world):
    from django.urls import reverse

    from apimon.models import User

    operator = User.objects.create_superuser(email="op@apimon.test", password="x")
    client.force_login(operator, backend="django.contrib.auth.backends.ModelBackend")
    url = reverse("admin:apimon_organization_change", args=[world.org.pk])
    response = client.post(
        url,
        {
            "name": "Acme\nEvil",
            "slug": world.org.slug,
            "plan": world.org.plan_id,
            "dunning_grace_days": 3,
            "memberships-TOTAL_FORMS": 0,
            "memberships-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 200
    assert SINGLE_LINE_MESSAGE in response.context["adminform"].form.errors["name"]
    assert Organization.objects.get(pk=world.org.pk).name == "Acme"


def test_an_email_subject_is_one_line_whatever_a_name_holds():
    assert (
        single_line("Poison\nAPI\u2028reached\x0080 %\r\n") == "Poison API reached 80 %"
    )
