"""Platform plans and the trial upgrade: told to upgrade → plans → billing and contact
information → Checkout (setup mode) on the platform account → on the paid plan."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from apimon import stripe_client as sc
from apimon.models import PlatformPlan
from billing.models import PlatformSubscription, PlatformSubscriptionStatus
from billing.services import platform_checkout_complete
from stripe_emulator import testing
from tests.billing.conftest import path_of, query
from tests.helpers import field_error

pytestmark = pytest.mark.django_db

DETAILS = {
    "name": "Acme Weather Ltd",
    "line1": "1 Main Street",
    "line2": "",
    "city": "Dublin",
    "postal_code": "D02 X285",
    "state": "",
    "country": "IE",
    "email": "billing@acme.test",
    "phone": "+353 1 234 5678",
}


def upgrade_url(org, plan="starter") -> str:
    return reverse("monetization:upgrade", args=[org.slug, plan])


def proceed(client, org, plan="starter", **changes):
    return client.post(upgrade_url(org, plan), {**DETAILS, **changes})


def stripe_session(sub: PlatformSubscription):
    return sc.get_client().v1.checkout.sessions.retrieve(sub.checkout_session_id)


def test_starter_and_growth_are_seeded_paid_plans():
    plans = {p.slug: p for p in PlatformPlan.objects.all()}

    assert plans["trial"].is_trial and not plans["trial"].allows_monetization
    for slug in ("starter", "growth"):
        assert plans[slug].allows_monetization and not plans[slug].is_trial
        assert plans[slug].monthly_price_minor > 0
        assert Decimal(0) < plans[slug].commission_percent < Decimal(100)


def test_a_trial_owner_is_told_to_upgrade(world, owner_client):
    page = owner_client.get(reverse("monetization:status", args=[world.org.slug]))

    html = page.content.decode()
    assert page.status_code == 200
    assert "Upgrade to monetize your APIs" in html
    assert "is on the <strong>Trial</strong> plan" in html
    assert reverse("monetization:plans", args=[world.org.slug]) in html
    assert "Connect with Stripe" not in html


def test_the_plan_list_shows_price_and_commission(world, owner_client):
    html = owner_client.get(
        reverse("monetization:plans", args=[world.org.slug])
    ).content.decode()

    assert "Starter" in html and "$29.00" in html and "10% commission" in html
    assert "Growth" in html and "$99.00" in html and "5% commission" in html
    assert upgrade_url(world.org, "growth") in html
    assert "Trial" not in html.split("<h1>")[1].split("</h1>")[0]


@pytest.mark.parametrize(
    ("changes", "field", "error"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"line1": ""}, "line1", "This field is required."),
        ({"city": ""}, "city", "This field is required."),
        ({"postal_code": ""}, "postal_code", "Enter the postal code."),
        ({"country": "XX"}, "country", "Select a valid choice."),
        ({"email": "not-an-email"}, "email", "Enter a valid email address."),
        ({"phone": "555-0100"}, "phone", "international format"),
        ({"phone": "+1 (415) 555"}, "phone", "international format"),
    ],
)
def test_billing_information_is_validated_next_to_each_field(
    world, owner_client, stripe_emulator, changes, field, error
):
    response = proceed(owner_client, world.org, **changes)

    assert response.status_code == 200
    form = response.context["form"]
    assert any(error in message for message in form.errors[field])
    assert error in field_error(response.content, field)
    assert not PlatformSubscription.objects.exists()
    world.org.refresh_from_db()
    assert world.org.plan.slug == "trial"


def test_a_country_without_postal_codes_needs_none(
    world, owner_client, stripe_emulator
):
    response = proceed(
        owner_client, world.org, country="HK", postal_code="", city="Hong Kong"
    )

    sub = PlatformSubscription.objects.get(organization=world.org)
    assert response["Location"] == stripe_session(sub).url
    assert (sub.status, sub.pending_plan.slug, sub.plan) == (
        PlatformSubscriptionStatus.PENDING,
        "starter",
        None,
    )
    assert (sub.billing_name, sub.address_line1, sub.city, sub.country) == (
        "Acme Weather Ltd",
        "1 Main Street",
        "Hong Kong",
        "HK",
    )
    assert (sub.postal_code, sub.email, sub.phone) == (
        "",
        "billing@acme.test",
        "+35312345678",
    )
    address = sc.get_client().v1.customers.retrieve(sub.customer_id).address
    assert (address.city, address.country, address.postal_code) == (
        "Hong Kong",
        "HK",
        None,
    )
    world.org.refresh_from_db()
    assert world.org.plan.slug == "trial"  # until the card is saved


def test_proceed_opens_checkout_in_setup_mode_on_the_platform_account(
    world, owner_client, stripe_emulator
):
    response = proceed(owner_client, world.org)

    assert response.status_code == 302
    assert response["Location"].startswith("http://127.0.0.1:12111/c/pay/cs_test_")
    sub = PlatformSubscription.objects.get(organization=world.org)
    assert sub.status == PlatformSubscriptionStatus.PENDING
    assert sub.pending_plan.slug == "starter" and sub.plan is None
    assert sub.phone == "+35312345678"
    client = sc.get_client()
    session = client.v1.checkout.sessions.retrieve(sub.checkout_session_id)
    assert session.mode == "setup"
    assert session.customer == sub.customer_id
    assert session.metadata.to_dict() == {
        "apimon_purpose": "platform_plan",
        "organization_id": str(world.org.pk),
        "plan": "starter",
    }
    assert "{CHECKOUT_SESSION_ID}" in session.success_url
    # The customer lives on the platform account (no Stripe-Account header).
    customer = client.v1.customers.retrieve(sub.customer_id)
    assert customer.name == "Acme Weather Ltd"
    assert customer.email == "billing@acme.test"
    assert customer.phone == "+35312345678"
    assert customer.address.city == "Dublin" and customer.address.country == "IE"
    # Nothing changed yet.
    world.org.refresh_from_db()
    assert world.org.plan.slug == "trial"


def test_saving_a_card_puts_the_organization_on_the_plan(
    world, owner_client, stripe_emulator
):
    checkout = proceed(owner_client, world.org)["Location"]

    status, back = testing.submit_card(stripe_emulator, checkout, "4242 4242 4242 4242")
    assert status in (302, 303)
    response = owner_client.get(path_of(back), follow=True)

    assert "You are on the Starter plan" in response.content.decode()
    world.org.refresh_from_db()
    assert world.org.plan.slug == "starter"
    sub = PlatformSubscription.objects.get(organization=world.org)
    assert sub.status == PlatformSubscriptionStatus.ACTIVE
    assert sub.plan.slug == "starter" and sub.pending_plan is None
    assert (sub.card_brand, sub.card_last4) == ("visa", "4242")
    assert sub.started_at is not None and sub.next_invoice_at == sub.started_at
    # Checkout does not do this by itself: apimon makes the card the invoice default.
    customer = sc.get_client().v1.customers.retrieve(sub.customer_id)
    assert customer.invoice_settings.default_payment_method == sub.payment_method_id
    # The status page now offers the next step and shows the card.
    html = response.content.decode()
    assert "Connect with Stripe" in html and "•••• 4242" in html


def test_the_return_and_the_webhook_complete_the_upgrade_once(
    world,
    owner_client,
    stripe_emulator,
    stripe_webhooks,
    django_capture_on_commit_callbacks,
):
    checkout = proceed(owner_client, world.org)["Location"]
    _status, back = testing.submit_card(stripe_emulator, checkout)
    session_id = query(back)["session_id"]

    with django_capture_on_commit_callbacks(execute=True):
        stripe_webhooks.deliver()
    sub = PlatformSubscription.objects.get(organization=world.org)
    first = (sub.started_at, sub.updated_at)
    assert sub.status == PlatformSubscriptionStatus.ACTIVE
    assert sub.completed_session_id == session_id

    response = owner_client.get(path_of(back))  # the browser comes back afterwards
    assert response.status_code == 302
    sub.refresh_from_db()
    assert (sub.started_at, sub.updated_at) == first
    _sub, changed = platform_checkout_complete(session_id=session_id)
    assert changed is False


def test_returning_before_the_card_is_saved_changes_nothing(
    world, owner_client, stripe_emulator
):
    proceed(owner_client, world.org)
    sub = PlatformSubscription.objects.get()

    response = owner_client.get(
        reverse("monetization:upgrade-done", args=[world.org.slug])
        + f"?session_id={sub.checkout_session_id}",
        follow=True,
    )

    assert "Your plan has not changed" in response.content.decode()
    world.org.refresh_from_db()
    assert world.org.plan.slug == "trial"


@pytest.mark.parametrize("query_string", ["", "?session_id=cs_test_unknown"])
def test_a_missing_or_unknown_session_changes_nothing(
    world, owner_client, stripe_emulator, query_string
):
    response = owner_client.get(
        reverse("monetization:upgrade-done", args=[world.org.slug]) + query_string,
        follow=True,
    )

    assert "Your plan has not changed" in response.content.decode()
    world.org.refresh_from_db()
    assert world.org.plan.slug == "trial"


def test_a_declined_card_leaves_the_trial(world, owner_client, stripe_emulator):
    checkout = proceed(owner_client, world.org)["Location"]

    status, page = testing.submit_card(stripe_emulator, checkout, "4000 0000 0000 0002")

    assert status == 402 and "declined" in page
    world.org.refresh_from_db()
    assert world.org.plan.slug == "trial"


def test_cancelling_checkout_returns_to_the_form(world, owner_client, stripe_emulator):
    proceed(owner_client, world.org)
    sub = PlatformSubscription.objects.get()
    session = sc.get_client().v1.checkout.sessions.retrieve(sub.checkout_session_id)

    response = owner_client.get(path_of(session.cancel_url))

    assert (
        "Checkout was cancelled: your plan has not changed."
        in response.content.decode()
    )
    assert response.context["form"].initial["city"] == "Dublin"


def test_another_organizations_session_is_refused(
    world, owner_client, client_for, stripe_emulator
):
    outsider = client_for(world.outsider)
    checkout = proceed(outsider, world.other_org)["Location"]
    _status, back = testing.submit_card(stripe_emulator, checkout)
    session_id = query(back)["session_id"]

    owner = client_for(world.owner)
    response = owner.get(
        reverse("monetization:upgrade-done", args=[world.org.slug])
        + f"?session_id={session_id}",
        follow=True,
    )

    assert "another organization" in response.content.decode()
    world.org.refresh_from_db()
    assert world.org.plan.slug == "trial"


def test_an_inactive_plan_cannot_be_chosen(world, owner_client):
    PlatformPlan.objects.filter(slug="growth").update(is_active=False)

    assert owner_client.get(upgrade_url(world.org, "growth")).status_code == 404
    assert owner_client.get(upgrade_url(world.org, "trial")).status_code == 404


def test_publishers_and_outsiders_cannot_upgrade(world, client_for, stripe_emulator):
    assert (
        client_for(world.publisher).post(upgrade_url(world.org), DETAILS).status_code
        == 403
    )
    assert (
        client_for(world.outsider).post(upgrade_url(world.org), DETAILS).status_code
        == 404
    )
    assert not PlatformSubscription.objects.exists()


def test_the_settings_menu_leads_to_monetization(world, owner_client):
    html = owner_client.get(reverse("members", args=[world.org.slug])).content.decode()

    assert reverse("monetization:status", args=[world.org.slug]) in html
    publisher = owner_client.get(
        reverse("publisher:dashboard", args=[world.org.slug])
    ).content.decode()
    assert ">Monetization</a>" in publisher


def test_the_country_list_uses_english_names(world, owner_client):
    html = owner_client.get(upgrade_url(world.org)).content.decode()

    assert '<option value="NR">Nauru</option>' in html
    assert "Naoero" not in html
