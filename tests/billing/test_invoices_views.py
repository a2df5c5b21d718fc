"""The store's invoice pages and partials: a subscriber sees their own invoices with
lines, amounts, status and Stripe's hosted page and PDF; nobody else's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.template import Context, Template
from django.utils import timezone

from billing.engine import billing_run, settle_delay
from billing.models import Invoice
from billing.push import invoice_push
from billing.selectors import next_invoice_preview
from gateway import meter
from publisher import services as publisher_services
from store.models import SubscriptionState
from tests.billing.conftest import HOUR, add_usage, flat, overage, per_unit, utc
from tests.conftest import make_user
from tests.gateway.conftest import redis_db  # noqa: F401 - a clean Redis

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid_invoice(shop, stripe):
    customer = stripe.customer(shop)
    sub = shop.subscribe(
        shop.tier(flat("49.00"), name="Gold"), at=utc(2027, 1, 1), customer=customer
    )
    billing_run(now=utc(2027, 1, 1, 0, 1), flush=False, enqueue_push=False)
    return invoice_push(invoice_id=Invoice.objects.get(subscription=sub).pk)


def url(org, path=""):
    return f"/t/{org.slug}/store/invoices/{path}"


def test_the_subscriber_lists_their_invoices(client_for, world, paid_invoice):
    response = client_for(world.subscriber).get(url(world.org))

    assert response.status_code == 200
    html = response.content.decode()
    assert "ACME-000001" in html
    assert "$49.00" in html
    assert "Paid" in html
    assert paid_invoice.hosted_invoice_url in html
    assert paid_invoice.invoice_pdf in html


def test_an_invoice_page_shows_its_lines(client_for, world, paid_invoice):
    response = client_for(world.subscriber).get(url(world.org, f"{paid_invoice.pk}/"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Invoice ACME-000001" in html
    assert "Flat fee 1 Jan 2027 – 1 Feb 2027" in html
    assert "Gold tier" in html


def test_another_subscribers_invoice_is_not_found(client_for, world, paid_invoice):
    other = make_user("other@acme.test")
    from apimon.models import Membership, Role

    Membership.objects.create(user=other, organization=world.org, role=Role.SUBSCRIBER)
    client = client_for(other)

    assert "ACME-000001" not in client.get(url(world.org)).content.decode()
    assert client.get(url(world.org, f"{paid_invoice.pk}/")).status_code == 404


def test_an_outsider_gets_404(client_for, world, paid_invoice):
    client = client_for(world.outsider)
    assert client.get(url(world.org)).status_code == 404
    assert client.get(url(world.org, f"{paid_invoice.pk}/")).status_code == 404
    # Their own organization's page does not show acme's invoice either.
    assert "ACME-000001" not in client.get(url(world.other_org)).content.decode()


def test_anonymous_visitors_are_sent_to_log_in(client, world):
    response = client.get(url(world.org))
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_the_subscription_partial_lists_its_invoices(world, paid_invoice):
    html = Template(
        "{% load billing_tags %}{% subscription_invoices subscription %}"
    ).render(Context({"subscription": paid_invoice.subscription}))

    assert "ACME-000001" in html
    assert "Flat fee" in html
    assert "$49.00" in html
    assert "PDF" in html


def test_the_partial_can_be_included_by_path(world, paid_invoice):
    html = Template('{% include "billing/_subscription_invoices.html" %}').render(
        Context({"subscription": paid_invoice.subscription})
    )
    assert "ACME-000001" in html


def test_a_declined_invoice_tells_the_subscriber_to_update_the_card(
    client_for, world, shop, stripe
):
    customer = stripe.customer(shop, card="pm_card_chargeCustomerFail")
    shop.subscribe(shop.tier(flat("49.00")), at=utc(2027, 1, 1), customer=customer)
    billing_run(now=utc(2027, 1, 1, 0, 1), flush=False, enqueue_push=False)
    invoice_push(invoice_id=Invoice.objects.get().pk)

    html = client_for(world.subscriber).get(url(world.org)).content.decode()

    assert "Payment failed" in html
    assert "Pay online" in html


# -- the next invoice preview ------------------------------------------------------


def test_the_preview_rates_the_usage_so_far_and_adds_the_next_fee(shop):
    now = timezone.now().replace(microsecond=0)
    tier = shop.tier(overage("20.00", included=100, price="0.10"), name="Pro")
    sub = shop.subscribe(tier, at=now - timedelta(days=3))
    billing_run(now=now, flush=False, enqueue_push=False)  # the start invoice
    sub.refresh_from_db()
    add_usage(sub, now - timedelta(days=2), 130)

    preview = next_invoice_preview(sub, now)

    assert preview.at == sub.current_period_end
    assert preview.usage == 130
    # 30 over × $0.10 = $3.00, then the next period's $20.00
    assert [(x.kind, x.amount_minor) for x in preview.lines] == [
        ("OVERAGE", 300),
        ("FIXED", 2000),
    ]
    assert preview.total_minor == 2300
    # And it writes nothing.
    assert Invoice.objects.count() == 1


def test_the_preview_follows_a_scheduled_downgrade_and_a_cancellation(shop):
    now = timezone.now().replace(microsecond=0)
    gold = shop.tier(flat("100.00"), name="Gold")
    silver = shop.tier(flat("40.00"), name="Silver")
    sub = shop.subscribe(gold, at=now - timedelta(days=3))
    billing_run(now=now, flush=False, enqueue_push=False)
    sub.refresh_from_db()
    sub.scheduled_tier, sub.scheduled_tier_version = silver, silver.current_version
    sub.save()

    assert [x.amount_minor for x in next_invoice_preview(sub, now).lines] == [4000]

    sub.scheduled_tier = sub.scheduled_tier_version = None
    sub.cancel_at_period_end = True
    sub.save()
    preview = next_invoice_preview(sub, now)
    assert preview.lines == []
    assert "ends at the end of this period" in preview.note


def test_no_preview_for_a_free_or_cancelled_subscription(shop):
    from tests.billing.conftest import free

    now = timezone.now()
    assert next_invoice_preview(shop.subscribe(shop.tier(free()), at=now), now) is None
    sub = shop.subscribe(shop.tier(per_unit()), at=now, app_name="x")
    sub.state = "CANCELLED"
    assert next_invoice_preview(sub, now) is None


def test_the_preview_partial_renders(shop):
    now = timezone.now().replace(microsecond=0)
    sub = shop.subscribe(shop.tier(per_unit("0.01")), at=now - timedelta(days=1))
    add_usage(sub, now - timedelta(hours=20), 250)

    html = Template(
        "{% load billing_tags %}{% next_invoice_preview subscription %}"
    ).render(Context({"subscription": sub}))

    assert "Next invoice" in html
    assert "250 requests" in html
    assert "$2.50" in html


def in_redis(redis, sub, at, count: int) -> None:
    """`count` requests at `at` that the gateway counted and has not flushed yet."""
    hour = sub.started_at + ((at - sub.started_at) // HOUR) * HOUR
    redis.hincrby(meter.LIVE, meter.usage_field(sub.pk, meter.epoch_us(hour)), count)


def test_the_preview_counts_usage_still_in_redis(shop, redis_db):  # noqa: F811
    now = timezone.now().replace(microsecond=0)
    sub = shop.subscribe(shop.tier(per_unit("0.01")), at=now - timedelta(days=2))
    add_usage(sub, now - timedelta(days=1), 100)
    in_redis(redis_db, sub, now - timedelta(minutes=5), 50)

    preview = next_invoice_preview(sub, now)

    assert preview.usage == 150
    assert [(x.kind, x.amount_minor) for x in preview.lines] == [("USAGE", 150)]


def test_in_a_trial_the_preview_is_the_invoice_the_trials_end_brings(shop):
    now = timezone.now().replace(microsecond=0)
    sub = shop.subscribe(
        shop.tier(flat("49.00"), trial_days=14), at=now - timedelta(days=2)
    )
    add_usage(sub, now - timedelta(days=1), 500)  # a trial's usage is not billed

    preview = next_invoice_preview(sub, now)

    assert preview.at == sub.trial_end
    assert preview.usage is None
    assert "Nothing is charged for the trial" in preview.note
    # The engine, at the trial's end, invoices exactly that: the first paid fee.
    billing_run(now=sub.trial_end + settle_delay(), flush=False, enqueue_push=False)
    invoice = Invoice.objects.get(subscription=sub)
    assert [(x.kind, x.description, x.amount_minor) for x in preview.lines] == [
        (x.kind, x.description, x.amount_minor) for x in invoice.lines.all()
    ]
    assert (preview.total_minor, invoice.total_minor) == (4900, 4900)


def test_cancelled_in_a_trial_the_preview_charges_nothing(shop):
    now = timezone.now().replace(microsecond=0)
    sub = shop.subscribe(
        shop.tier(flat("49.00"), trial_days=14), at=now - timedelta(days=2)
    )
    sub.cancel_at_period_end = True
    sub.save()

    preview = next_invoice_preview(sub, now)

    assert preview.at == sub.trial_end
    assert preview.lines == []
    assert "ends with the trial" in preview.note


def test_a_blocked_subscription_is_previewed_without_a_new_fee(shop):
    now = timezone.now().replace(microsecond=0)
    tier = shop.tier(overage("20.00", included=100, price="0.10"))
    sub = shop.subscribe(tier, at=now - timedelta(days=3))
    billing_run(now=now, flush=False, enqueue_push=False)  # the start invoice
    sub.refresh_from_db()
    sub.state = SubscriptionState.BLOCKED
    sub.save()
    add_usage(sub, now - timedelta(days=2), 110)

    preview = next_invoice_preview(sub, now)

    assert [(x.kind, x.amount_minor) for x in preview.lines] == [("OVERAGE", 100)]
    assert preview.note == "No fee is charged while the subscription is blocked."


def test_the_preview_follows_the_publishers_move_to_a_new_price(shop):
    now = timezone.now().replace(microsecond=0)
    gold = shop.tier(flat("100.00"), name="Gold")
    sub = shop.subscribe(gold, at=now - timedelta(days=3))
    billing_run(now=now, flush=False, enqueue_push=False)
    sub.refresh_from_db()
    publisher_services.tier_update(
        tier=gold,
        actor=None,
        name="Gold",
        limits=publisher_services.TierLimits.of(gold),
        price=publisher_services.TierPrice(pricing=flat("120.00")),
        migrate_existing=True,
    )

    preview = next_invoice_preview(sub, now)

    assert [(x.kind, x.amount_minor) for x in preview.lines] == [("FIXED", 12000)]
