"""One tenant cannot stop a job for the others: an organization whose data is
broken (written straight into the database, past every form) fails alone in the
quota-alert job, the billing job and webhook processing; the others' emails,
invoices and webhook events go out in the same run, the failure is listed in the
admin, and the next run tries it again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse

from apimon.models import JobFailure, Organization, User
from billing.models import Invoice, StripeConnection, WebhookEvent, WebhookStatus
from billing.services import billing_tick
from gateway import meter
from gateway.redis import get_redis
from gateway.services import quota_alerts_send
from publisher.models import Api, Tier, TierVersion
from store.models import Subscription
from tests.billing.conftest import add_usage, make_shop, per_unit, utc

pytestmark = pytest.mark.django_db

NOW = utc(2027, 2, 1, 0, 5)


@pytest.fixture
def two_shops(world):
    """Acme (healthy) and Globex (poisoned), each with a subscription 9 requests
    into a quota of 10 per month, and a connected account."""
    shops = {}
    for org, subscriber, account in (
        (world.org, world.subscriber, "acct_acme"),
        (world.other_org, User.objects.create_user(email="sub@globex.test"), "x"),
    ):
        shop = make_shop(org, subscriber)
        tier = shop.tier(per_unit("0.01"))
        Tier.objects.filter(pk=tier.pk).update(quota_limit=10, quota_unit="month")
        sub = shop.subscribe(tier, at=utc(2027, 1, 1))
        add_usage(sub, utc(2027, 1, 20), 9)
        StripeConnection.objects.create(
            organization=org,
            account_id=account if account != "x" else "acct_globex",
            monetization_enabled=True,
            charges_enabled=True,
        )
        shops[org.slug] = (shop, sub)
    return shops


def poison(shop, sub) -> None:
    """What a tenant could not type but the database may hold: control characters
    in names, a recipient address with a line break, a billing cycle the engine does
    not know, a webhook event whose object is not an object."""
    Api.objects.filter(pk=shop.api.pk).update(name="Poison\nAPI")
    Organization.objects.filter(pk=shop.org.pk).update(name="Globex\r\nBcc: x@evil")
    User.objects.filter(pk=sub.subscriber_id).update(email="sub\n@globex.test")
    TierVersion.objects.filter(pk=sub.tier_version_id).update(billing_cycle="eon")
    WebhookEvent.objects.create(
        event_id="evt_poison",
        type="account.updated",
        account="acct_globex",
        payload={"id": "evt_poison", "data": {"object": "not an account"}},
        received_at=NOW - timedelta(minutes=10),
    )


def test_a_poisoned_organization_fails_alone_and_is_listed_in_the_admin(
    two_shops, client
):
    (acme, acme_sub), (globex, globex_sub) = two_shops["acme"], two_shops["globex"]
    poison(globex, globex_sub)
    Api.objects.filter(pk=acme.api.pk).update(name="Weather\u2028API")
    good_event = WebhookEvent.objects.create(
        event_id="evt_good",
        type="account.updated",
        account="acct_acme",
        payload={
            "id": "evt_good",
            "data": {"object": {"id": "acct_acme", "charges_enabled": False}},
        },
        received_at=NOW - timedelta(minutes=10),
    )
    get_redis().sadd(meter.ALERTS, acme_sub.pk, globex_sub.pk)

    alerts = quota_alerts_send(now=utc(2027, 1, 20, 12))
    tick = billing_tick(now=NOW)

    # Acme's alert went out, its subject on one line (the name held a separator).
    assert alerts.sent == 1
    [message] = mail.outbox
    assert message.to == ["subscriber@acme.test"]
    assert "\u2028" not in message.subject and "Weather API" in message.subject
    # Acme's invoice was written and its webhook event processed.
    assert Invoice.objects.filter(subscription=acme_sub).count() == 1
    assert not Invoice.objects.filter(subscription=globex_sub).exists()
    assert tick.run.failed == 1
    good_event.refresh_from_db()
    assert good_event.status == WebhookStatus.PROCESSED
    assert not StripeConnection.objects.get(account_id="acct_acme").charges_enabled
    poisoned_event = WebhookEvent.objects.get(event_id="evt_poison")
    assert poisoned_event.status == WebhookStatus.FAILED

    # Each failure is recorded once per item, with Globex as its organization.
    failures = {f.job: f for f in JobFailure.objects.filter(resolved=False)}
    assert set(failures) == {"quota alerts", "billing", "webhook processing"}
    assert {f.organization_id for f in failures.values()} == {globex.org.pk}
    assert failures["billing"].object_ref == f"subscription {globex_sub.pk}"
    assert "eon" in failures["billing"].error

    # The operator sees them in the admin, filtered by job and by organization.
    operator = User.objects.create_superuser(email="op@apimon.test", password="x")
    client.force_login(operator, backend="django.contrib.auth.backends.ModelBackend")
    url = reverse("admin:apimon_jobfailure_changelist")
    page = client.get(url, {"job": "billing", "organization__id__exact": globex.org.pk})
    assert page.status_code == 200
    assert [str(f) for f in page.context["cl"].result_list] == [
        f"billing: subscription {globex_sub.pk}"
    ]
    assert "eon" in page.content.decode()
    assert (
        client.get(url, {"organization__id__exact": acme.org.pk})
        .context["cl"]
        .result_count
        == 0
    )

    # The alert candidate was kept: the next run tries again, and counts it.
    quota_alerts_send(now=utc(2027, 1, 20, 12))
    assert JobFailure.objects.get(job="quota alerts").count == 2

    # Once the data is fixed, the next run handles it and resolves the record.
    User.objects.filter(pk=globex_sub.subscriber_id).update(email="sub@globex.test")
    TierVersion.objects.filter(pk=globex_sub.tier_version_id).update(
        billing_cycle="month"
    )
    assert quota_alerts_send(now=utc(2027, 1, 20, 12)).sent == 1
    assert "Poison API" in mail.outbox[-1].subject
    billing_tick(now=NOW)
    assert Invoice.objects.filter(subscription=globex_sub).count() == 1
    assert set(
        JobFailure.objects.filter(resolved=False).values_list("job", flat=True)
    ) == {"webhook processing"}


def test_a_batch_whose_writes_fail_is_redone_one_by_one_and_the_bad_row_fails_alone(
    two_shops,
):
    from billing import engine

    (_acme, acme_sub), (globex, globex_sub) = two_shops["acme"], two_shops["globex"]
    written = []

    def invoice(rows, failed):
        # The writes of a batch holding Globex's row break (as a constraint or a
        # value the database refuses would): the whole batch is rolled back.
        if any(row.organization_id == globex.org.pk for row in rows):
            raise ValueError("a value the database refuses")
        written.extend(row.pk for row in rows)
        return engine.RunResult(steps=len(rows), batches=1)

    result = engine.run_in_batches(
        engine.Batches(
            name="subscriptions",
            due=lambda: Subscription.objects.exclude(pk__in=written),  # done: not due
            order=("pk",),
            related=("organization",),
            invoice=invoice,
        ),
        size=10,
        enqueue_push=False,
    )

    assert written == [acme_sub.pk]
    assert result.failed == 1
    failure = JobFailure.objects.get()
    assert (failure.job, failure.object_ref, failure.organization_id) == (
        "billing",
        f"subscription {globex_sub.pk}",
        globex.org.pk,
    )
    assert "a value the database refuses" in failure.error
