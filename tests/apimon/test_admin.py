"""The operator's Django admin for apimon's own models: each changelist loads as a
superuser, and its search box and filters find the right rows."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from apimon.models import Membership, Organization, PlatformPlan, Role, User
from apimon.services import invitation_create


@pytest.fixture
def operator_client(client, world):
    operator = User.objects.create_superuser(email="op@apimon.test", password="x")
    client.force_login(operator, backend="django.contrib.auth.backends.ModelBackend")
    return client


def listed(client, model: str, **query) -> list[str]:
    """The rows of a changelist (as str), after its search (`q`) and filters."""
    response = client.get(reverse(f"admin:apimon_{model}_changelist"), query)
    assert response.status_code == 200
    return sorted(str(row) for row in response.context["cl"].result_list)


def test_organizations_by_search_and_by_plan(operator_client, world):
    assert listed(operator_client, "organization") == ["Acme", "Globex"]
    assert listed(operator_client, "organization", q="glob") == ["Globex"]
    assert listed(operator_client, "organization", q="nobody") == []

    starter = PlatformPlan.objects.get(slug="starter")
    Organization.objects.filter(pk=world.other_org.pk).update(plan=starter)
    assert listed(operator_client, "organization", plan__id__exact=starter.pk) == [
        "Globex"
    ]
    page = operator_client.get(reverse("admin:apimon_organization_changelist"))
    assert "By plan" in page.content.decode()  # the filter is offered


def test_an_organization_opens_with_its_members(operator_client, world):
    page = operator_client.get(
        reverse("admin:apimon_organization_change", args=[world.org.pk])
    ).content.decode()
    assert "publisher@acme.test" in page and "subscriber@acme.test" in page


def test_memberships_by_search_role_and_organization(operator_client, world):
    everyone = listed(operator_client, "membership")
    assert len(everyone) == Membership.objects.count() == 4
    by_email = listed(operator_client, "membership", q="publisher@acme")
    assert by_email == [str(Membership.objects.get(user=world.publisher))]
    assert len(listed(operator_client, "membership", q="globex")) == 1
    owners = listed(operator_client, "membership", role__exact=Role.OWNER)
    assert owners == sorted(str(m) for m in Membership.objects.filter(role=Role.OWNER))
    assert len(owners) == 2
    acme = listed(operator_client, "membership", organization__id__exact=world.org.pk)
    assert len(acme) == 3


def test_platform_plans_by_search_and_flags(operator_client):
    assert listed(operator_client, "platformplan", q="growth") == ["Growth"]
    trial = listed(operator_client, "platformplan", is_trial__exact="1")
    assert trial == sorted(str(p) for p in PlatformPlan.objects.filter(is_trial=True))
    assert trial
    paid = listed(operator_client, "platformplan", allows_monetization__exact="1")
    assert "Starter" in paid and "Growth" in paid
    assert not set(trial) & set(paid)


def test_invitations_by_search_role_and_revoke_action(operator_client, world):
    pending, _ = invitation_create(
        organization=world.org,
        email="new-owner@acme.test",
        role=Role.OWNER,
        invited_by=world.owner,
    )
    other, _ = invitation_create(
        organization=world.other_org,
        email="dev@globex.test",
        role=Role.PUBLISHER,
        invited_by=world.outsider,
    )
    assert listed(operator_client, "invitation") == sorted([str(pending), str(other)])
    assert listed(operator_client, "invitation", q="new-owner") == [str(pending)]
    assert listed(operator_client, "invitation", q="globex") == [str(other)]
    assert listed(operator_client, "invitation", role__exact=Role.PUBLISHER) == [
        str(other)
    ]
    assert listed(
        operator_client, "invitation", organization__id__exact=world.org.pk
    ) == [str(pending)]

    response = operator_client.post(
        reverse("admin:apimon_invitation_changelist"),
        {"action": "revoke", "_selected_action": [pending.pk]},
        follow=True,
    )
    assert response.status_code == 200
    pending.refresh_from_db()
    other.refresh_from_db()
    assert (pending.status, other.status) == ("revoked", "pending")


def test_a_new_plan_starts_from_the_platform_currency_and_commission(
    operator_client, settings
):
    client = operator_client
    settings.PLATFORM_CURRENCY = "eur"
    settings.PLATFORM_DEFAULT_COMMISSION_PERCENT = Decimal("12.5")
    url = reverse("admin:apimon_platformplan_add")
    html = client.get(url).content.decode()
    assert 'name="currency" value="eur"' in html
    assert 'name="commission_percent" value="12.5"' in html

    response = client.post(
        url,
        {
            "name": "Enterprise test",
            "slug": "enterprise-test",
            "monthly_price_minor": "4900",
            "currency": "eur",
            "commission_percent": "12.5",
            "allows_monetization": "on",
            "is_active": "on",
            "sort_order": "3",
        },
    )
    assert response.status_code == 302
    plan = PlatformPlan.objects.get(slug="enterprise-test")
    assert (plan.currency, plan.commission_percent) == ("eur", Decimal("12.50"))


def test_job_failures_by_job_organization_and_search_and_marked_resolved(
    operator_client, world
):
    from apimon.jobs import job_failure_record
    from apimon.models import JobFailure

    job_failure_record(
        job="billing",
        ref="subscription 7",
        organization_id=world.org.pk,
        error=ValueError("unknown billing cycle 'eon'"),
    )
    job_failure_record(
        job="quota alerts",
        ref="subscription 8",
        organization_id=world.other_org.pk,
        error="BadHeaderError: Header values can't contain newlines",
    )
    job_failure_record(
        job="billing", ref="subscription 7", organization_id=world.org.pk, error="again"
    )

    assert listed(operator_client, "jobfailure") == [
        "billing: subscription 7",
        "quota alerts: subscription 8",
    ]
    assert JobFailure.objects.get(job="billing").count == 2
    assert listed(operator_client, "jobfailure", job="quota alerts") == [
        "quota alerts: subscription 8"
    ]
    assert listed(
        operator_client, "jobfailure", organization__id__exact=world.org.pk
    ) == ["billing: subscription 7"]
    assert listed(operator_client, "jobfailure", q="newlines") == [
        "quota alerts: subscription 8"
    ]

    response = operator_client.post(
        reverse("admin:apimon_jobfailure_changelist"),
        {
            "action": "mark_resolved",
            "_selected_action": [JobFailure.objects.get(job="billing").pk],
        },
    )
    assert response.status_code == 302
    assert listed(operator_client, "jobfailure", resolved__exact=0) == [
        "quota alerts: subscription 8"
    ]
