"""The owner's Billing page for the organization's platform plan: plan, status, next
charge, the plan's invoices (as in the ledger, with Stripe's hosted page and PDF from
the platform's own account), the card and changing it through Checkout, changing and
cancelling the plan (billing/platform_billing.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apimon import stripe_client as sc
from apimon.models import PlatformPlan
from billing import platform_billing as pb
from billing.engine import platform_billing_run
from billing.models import (
    Invoice,
    InvoiceStatus,
    PlatformSubscription,
    PlatformSubscriptionStatus,
    monetization_enabled,
)
from billing.push import invoice_push
from stripe_emulator import testing
from tests.billing.conftest import path_of, utc
from tests.billing.test_platform_billing import plan_subscription
from tests.billing.test_platform_plan import proceed

pytestmark = pytest.mark.django_db


def billing_url(org, name="overview", *args) -> str:
    return reverse(f"platform-billing:{name}", args=[org.slug, *args])


def plan(slug: str) -> PlatformPlan:
    return PlatformPlan.objects.get(slug=slug)


@pytest.fixture
def on_starter(
    world, owner_client, stripe_emulator, django_capture_on_commit_callbacks
):
    """world.org bought Starter through apimon's pages and Checkout (4242, expiry
    12/34); its first month is invoiced and paid on the platform's account."""
    checkout = proceed(owner_client, world.org)["Location"]
    _status, back = testing.submit_card(stripe_emulator, checkout)
    owner_client.get(path_of(back))
    with django_capture_on_commit_callbacks(execute=True):
        platform_billing_run(now=timezone.now(), enqueue_push=False)
    invoice_push(invoice_id=Invoice.objects.get(organization=world.org).pk)
    return PlatformSubscription.objects.get(organization=world.org)


def starter_at(org, started, *, slug="starter", card="pm_card_visa"):
    """`org` on a paid plan since `started` (anchor), a month in, without the
    pages."""
    return plan_subscription(
        org,
        plan(slug),
        card=card,
        started=started,
        card_brand="visa",
        card_last4="4242",
        next_invoice_at=started + timedelta(days=31),
    )


# --- Access -------------------------------------------------------------------------


def test_only_owners_open_the_billing_page(world, client_for, client):
    url = billing_url(world.org)
    assert client_for(world.owner).get(url).status_code == 200
    assert client_for(world.publisher).get(url).status_code == 403
    assert client_for(world.subscriber).get(url).status_code == 403
    assert client_for(world.outsider).get(url).status_code == 404
    client.logout()
    assert client.get(url).status_code == 302


def test_publishers_cannot_change_or_cancel_the_plan(
    world, client_for, stripe_emulator
):
    sub = starter_at(world.org, utc(2027, 1, 1))
    publisher = client_for(world.publisher)
    assert publisher.post(billing_url(world.org, "cancel")).status_code == 403
    assert publisher.post(billing_url(world.org, "change", "growth")).status_code == 403
    assert publisher.post(billing_url(world.org, "card")).status_code == 403
    outsider = client_for(world.outsider)
    assert outsider.post(billing_url(world.org, "cancel")).status_code == 404
    sub.refresh_from_db()
    assert (sub.plan.slug, sub.cancel_at_period_end) == ("starter", False)


def test_the_settings_menu_and_the_subnav_lead_to_billing(world, owner_client):
    html = owner_client.get(
        reverse("monetization:status", args=[world.org.slug])
    ).content.decode()
    assert html.count(f'href="{billing_url(world.org)}"') >= 2


# --- What the page shows --------------------------------------------------------------


def test_a_trial_organization_is_told_to_choose_a_plan(world, owner_client):
    html = owner_client.get(billing_url(world.org)).content.decode()
    assert ">Trial</span>" in html
    assert "monetization needs a paid plan" in html
    assert reverse("monetization:plans", args=[world.org.slug]) in html
    assert "No card on file" in html and "No invoices yet" in html


def test_the_page_shows_plan_next_charge_card_and_the_ledgers_invoices(
    world, owner_client, on_starter
):
    html = owner_client.get(billing_url(world.org)).content.decode()

    assert (
        ">Active</span>" in html and '<strong id="plan-name">Starter</strong>' in html
    )
    nxt = on_starter.next_invoice_at
    assert f"$29.00 on {nxt.day} {nxt:%b %Y} (Starter plan)" in html
    assert "Visa •••• 4242" in html and "expires 12/2034" in html
    # Every platform invoice of the ledger, and only those, with Stripe's links from
    # the platform's own account.
    ledger = list(Invoice.objects.filter(organization=world.org, kind="platform"))
    assert len(ledger) == 1
    for invoice in ledger:
        remote = sc.get_client().v1.invoices.retrieve(invoice.stripe_invoice_id)
        assert remote.number == invoice.number
        assert invoice.hosted_invoice_url == remote.hosted_invoice_url
        row = html.split(f'id="invoice-{invoice.number}"', 1)[1].split("</tr>", 1)[0]
        assert "$29.00" in row and ">Paid</span>" in row
        assert f'href="{remote.hosted_invoice_url}"' in row
        assert f'href="{remote.invoice_pdf}"' in row
        assert "apimon Starter plan" in row


def test_another_organizations_invoices_are_not_shown(
    world, owner_client, on_starter, stripe_emulator
):
    other = starter_at(world.other_org, timezone.now() - timedelta(minutes=1))
    other.next_invoice_at = other.started_at
    other.save()
    platform_billing_run(now=timezone.now(), enqueue_push=False)
    theirs = Invoice.objects.get(organization=world.other_org)

    html = owner_client.get(billing_url(world.org)).content.decode()

    assert theirs.number not in html


def test_a_past_due_plan_shows_the_grace_date(world, owner_client, stripe_emulator):
    sub = starter_at(world.org, utc(2027, 1, 1))
    sub.past_due_since = utc(2027, 2, 1)
    sub.grace_until = utc(2027, 2, 15)
    sub.save()

    html = owner_client.get(billing_url(world.org)).content.decode()

    assert ">Past due</span>" in html
    assert "until <strong>15 Feb 2027</strong>" in html
    assert 'id="change-plan"' not in html  # the card first


# --- The card -------------------------------------------------------------------------


def test_change_card_goes_through_checkout_on_the_platform_account(
    world, owner_client, on_starter, stripe_emulator
):
    response = owner_client.post(billing_url(world.org, "card"))

    assert response.status_code == 302
    assert response["Location"].startswith("http://127.0.0.1:12111/c/pay/cs_test_")
    on_starter.refresh_from_db()
    session = sc.get_client().v1.checkout.sessions.retrieve(
        on_starter.checkout_session_id
    )  # the platform's own account: no Stripe-Account header
    assert session.mode == "setup" and session.customer == on_starter.customer_id
    assert session.metadata.action == "update_card"
    nxt = on_starter.next_invoice_at
    message = (
        "Nothing is charged now: this card pays the next invoice, $29.00 on "
        f"{nxt.day} {nxt:%b %Y}."
    )
    assert session.custom_text.submit.message == message
    _s, _t, page = testing.get_page(stripe_emulator, response["Location"])
    assert message in page

    _status, back = testing.submit_card(
        stripe_emulator, response["Location"], "5555 5555 5555 4444", exp="03 / 31"
    )
    html = owner_client.get(path_of(back), follow=True).content.decode()

    assert "Your new card Mastercard •••• 4444 is saved." in html
    assert "Mastercard •••• 4444" in html and "expires 03/2031" in html
    on_starter.refresh_from_db()
    assert (on_starter.card_brand, on_starter.card_last4) == ("mastercard", "4444")
    assert on_starter.plan.slug == "starter"
    customer = sc.get_client().v1.customers.retrieve(on_starter.customer_id)
    assert customer.invoice_settings.default_payment_method == (
        on_starter.payment_method_id
    )
    assert Invoice.objects.filter(organization=world.org).count() == 1  # no charge


def test_a_new_card_for_a_past_due_plan_pays_the_failed_invoice_before_the_page(
    world,
    owner_client,
    stripe_emulator,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    from billing import tasks

    sub = starter_at(
        world.org,
        timezone.now() - timedelta(minutes=1),
        card="pm_card_chargeCustomerFail",
    )
    sub.next_invoice_at = sub.started_at
    sub.save()
    with django_capture_on_commit_callbacks(execute=True):
        platform_billing_run(now=timezone.now(), enqueue_push=False)
        invoice_push(invoice_id=Invoice.objects.get().pk)
    sub.refresh_from_db()
    assert sub.is_past_due

    queued = []  # Celery's worker has not run when the browser comes back
    monkeypatch.setattr(
        tasks.retry_platform_payment, "delay", lambda *a: queued.append(a)
    )
    checkout = owner_client.post(billing_url(world.org, "card"))["Location"]
    sub.refresh_from_db()
    session = sc.get_client().v1.checkout.sessions.retrieve(sub.checkout_session_id)
    assert session.custom_text.submit.message == (
        "Saving this card pays the failed payment of $29.00 at once."
    )
    _status, back = testing.submit_card(stripe_emulator, checkout)
    with django_capture_on_commit_callbacks(execute=True):
        html = owner_client.get(path_of(back), follow=True).content.decode()

    sub.refresh_from_db()
    assert not sub.is_past_due
    assert Invoice.objects.get().status == InvoiceStatus.PAID
    assert ">Active</span>" in html and "Past due" not in html


# --- Changing the plan ----------------------------------------------------------------


def test_an_upgrade_applies_at_once_and_charges_the_prorated_difference_now(
    world, stripe_emulator
):
    sub = starter_at(world.org, utc(2027, 1, 1))

    result = pb.platform_plan_change(
        organization=world.org, plan=plan("growth"), now=utc(2027, 1, 16)
    )

    assert result.direction == "upgrade"
    invoice = result.invoice
    # 16 of January's 31 days left: -$29.00 × 16/31 and +$99.00 × 16/31, each
    # rounded half-up on its own, as Stripe prorates.
    assert [line.amount_minor for line in invoice.lines.all()] == [-1497, 5110]
    assert (invoice.kind, invoice.total_minor, invoice.currency) == (
        "platform",
        3613,
        "usd",
    )
    assert (invoice.period_start, invoice.period_end) == (
        utc(2027, 1, 16),
        utc(2027, 2, 1),
    )
    assert invoice.number == "ACME-P000001"
    sub.refresh_from_db()
    world.org.refresh_from_db()
    assert sub.plan.slug == world.org.plan.slug == "growth"
    assert sub.next_invoice_at == utc(2027, 2, 1)  # the anchor stays
    # Charged on the platform's own account.
    pushed = invoice_push(invoice_id=invoice.pk)
    assert pushed.status == InvoiceStatus.PAID
    remote = sc.get_client().v1.invoices.retrieve(pushed.stripe_invoice_id)
    assert (remote.total, remote.number, remote.customer) == (
        3613,
        "ACME-P000001",
        sub.customer_id,
    )


def test_the_upgrade_page_previews_the_charge_and_the_post_charges_it(
    world, owner_client, on_starter, stripe_emulator
):
    url = billing_url(world.org, "change", "growth")
    preview = owner_client.get(url).content.decode()
    assert "Upgrade to Growth" in preview and "Charged now" in preview

    html = owner_client.post(url, follow=True).content.decode()

    upgrade = Invoice.objects.filter(organization=world.org).order_by("pk").last()
    assert upgrade.rating == {"plan": "growth", "change_from": "starter"}
    assert upgrade.status == InvoiceStatus.PAID  # charged in the request
    assert "You are on the Growth plan now." in html
    assert f'id="invoice-{upgrade.number}"' in html
    assert "$99.00 on" in html  # the next monthly charge


def test_a_downgrade_waits_for_the_end_of_the_month(world, stripe_emulator):
    sub = starter_at(world.org, utc(2027, 1, 1), slug="growth")

    result = pb.platform_plan_change(
        organization=world.org, plan=plan("starter"), now=utc(2027, 1, 16)
    )

    assert (result.direction, result.invoice) == ("downgrade", None)
    sub.refresh_from_db()
    world.org.refresh_from_db()
    assert sub.plan.slug == world.org.plan.slug == "growth"
    assert sub.scheduled_plan.slug == "starter"
    assert pb.billing_overview(world.org).next_charge.amount_minor == 2900
    assert not Invoice.objects.exists()

    platform_billing_run(now=utc(2027, 2, 1, 0, 1), enqueue_push=False)

    sub.refresh_from_db()
    world.org.refresh_from_db()
    assert sub.plan.slug == world.org.plan.slug == "starter"
    assert sub.scheduled_plan is None
    invoice = Invoice.objects.get()
    assert (invoice.total_minor, invoice.period_start) == (2900, utc(2027, 2, 1))
    assert invoice.rating == {"plan": "starter"}


def test_keep_undoes_a_scheduled_downgrade(world, owner_client, stripe_emulator):
    sub = starter_at(world.org, utc(2027, 1, 1), slug="growth")
    owner_client.post(billing_url(world.org, "change", "starter"))
    sub.refresh_from_db()
    assert sub.scheduled_plan.slug == "starter"
    assert (
        "To Starter on 1 Feb 2027"
        in owner_client.get(billing_url(world.org)).content.decode()
    )

    owner_client.post(billing_url(world.org, "keep"))

    sub.refresh_from_db()
    assert sub.scheduled_plan is None


def test_a_past_due_plan_can_neither_change_nor_be_cancelled(
    world, owner_client, stripe_emulator
):
    sub = starter_at(world.org, utc(2027, 1, 1))
    sub.past_due_since, sub.grace_until = utc(2027, 1, 2), utc(2027, 1, 16)
    sub.save()

    html = owner_client.post(
        billing_url(world.org, "change", "growth"), follow=True
    ).content.decode()

    assert "update your card first" in html
    html = owner_client.post(billing_url(world.org, "cancel"), follow=True)
    assert "the plan ends on 16 Jan 2027" in html.content.decode()
    sub.refresh_from_db()
    assert sub.plan.slug == "starter" and not Invoice.objects.exists()
    assert not sub.cancel_at_period_end


def test_choosing_another_paid_plan_from_the_plans_page_uses_the_billing_rule(
    world, owner_client, stripe_emulator
):
    starter_at(world.org, utc(2027, 1, 1))
    response = owner_client.get(
        reverse("monetization:upgrade", args=[world.org.slug, "growth"])
    )
    assert response["Location"] == billing_url(world.org, "change", "growth")


# --- Cancelling -----------------------------------------------------------------------


def test_cancel_runs_to_the_end_of_the_month_then_the_trial_plan(
    world, owner_client, stripe_emulator
):
    from billing.models import StripeConnection

    sub = starter_at(world.org, utc(2027, 1, 1))
    StripeConnection.objects.create(
        organization=world.org, account_id="acct_acme", monetization_enabled=True
    )
    assert monetization_enabled(world.org)
    confirm = owner_client.get(billing_url(world.org, "cancel")).content.decode()
    assert "existing subscribers keep their subscriptions" in confirm

    html = owner_client.post(billing_url(world.org, "cancel"), follow=True)
    html = html.content.decode()

    assert "Your Starter plan ends on 1 Feb 2027" in html
    assert "Ends 1 Feb 2027</span>" in html
    assert "None: the plan ends on 1 Feb 2027" in html
    sub.refresh_from_db()
    assert sub.cancel_at_period_end and sub.status == PlatformSubscriptionStatus.ACTIVE
    world.org.refresh_from_db()
    assert world.org.plan.slug == "starter" and monetization_enabled(world.org)

    platform_billing_run(now=utc(2027, 2, 1, 0, 1), enqueue_push=False)

    sub.refresh_from_db()
    world.org.refresh_from_db()
    assert sub.status == PlatformSubscriptionStatus.CANCELLED
    assert (sub.ended_at, sub.next_invoice_at) == (utc(2027, 2, 1), None)
    assert world.org.plan.is_trial
    assert not monetization_enabled(world.org)  # no new paid subscriptions
    assert not Invoice.objects.exists()  # nothing more charged
    # The connection (and with it the existing subscriptions' billing) stays.
    assert world.org.stripe_connection.monetization_enabled
    page = owner_client.get(billing_url(world.org)).content.decode()
    assert "Your Starter plan ended on 1 Feb 2027" in page


def test_keep_my_plan_undoes_a_cancellation(world, owner_client, stripe_emulator):
    sub = starter_at(world.org, utc(2027, 1, 1))
    owner_client.post(billing_url(world.org, "cancel"))
    owner_client.post(billing_url(world.org, "resume"))

    sub.refresh_from_db()
    assert not sub.cancel_at_period_end
    platform_billing_run(now=utc(2027, 2, 1, 0, 1), enqueue_push=False)
    sub.refresh_from_db()
    assert sub.status == PlatformSubscriptionStatus.ACTIVE
    assert Invoice.objects.get().total_minor == 2900


def test_a_new_plan_after_a_cancellation_starts_clean(
    world, owner_client, stripe_emulator
):
    sub = starter_at(world.org, utc(2027, 1, 1))
    pb.platform_plan_cancel(organization=world.org)
    platform_billing_run(now=utc(2027, 2, 1, 0, 1), enqueue_push=False)

    checkout = proceed(owner_client, world.org, "growth")["Location"]
    _status, back = testing.submit_card(stripe_emulator, checkout)
    owner_client.get(path_of(back))

    sub.refresh_from_db()
    assert sub.status == PlatformSubscriptionStatus.ACTIVE
    assert sub.plan.slug == "growth" and not sub.cancel_at_period_end
    assert sub.next_invoice_at == sub.started_at  # its first month, now


# --- What Checkout says ---------------------------------------------------------------


def test_buying_a_plan_says_it_is_charged_now(world, owner_client, stripe_emulator):
    checkout = proceed(owner_client, world.org)["Location"]
    sub = PlatformSubscription.objects.get(organization=world.org)
    session = sc.get_client().v1.checkout.sessions.retrieve(sub.checkout_session_id)
    message = (
        "You will be charged $29.00 now for the first month of the Starter plan, "
        "then $29.00 every month."
    )
    assert session.custom_text.submit.message == message
    _s, _t, page = testing.get_page(stripe_emulator, checkout)
    assert message in page and "You will not be charged" not in page
