"""The operator sees the meter's ledgers in the Django admin: every organization's
rows, and a search that finds one organization's."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from apimon.models import User
from gateway.models import FlushBatch, QuotaAlert, UsageRecord
from publisher.models import Api, Tier, TierVersion
from store.models import Application, Subscription, SubscriptionState

HOUR = datetime(2027, 1, 15, 10, tzinfo=UTC)


def subscription(org, user, api_name: str) -> Subscription:
    api = Api.objects.create(
        organization=org, name=api_name, version="v1", context=api_name.lower(),
        backend_url="http://127.0.0.1:1/", state="PUBLISHED",
    )  # fmt: skip
    tier = Tier.objects.create(organization=org, name="Gold", quota_limit=100)
    version = TierVersion.objects.create(tier=tier, number=1)
    app = Application.objects.create(organization=org, owner=user, name="Dashboard")
    return Subscription.objects.create(
        organization=org, application=app, api=api, tier=tier, tier_version=version,
        subscriber=user, state=SubscriptionState.ACTIVE, started_at=HOUR,
    )  # fmt: skip


@pytest.fixture
def ledgers(world):
    """Usage, flush batches and quota alerts of acme (Weather) and globex (Payments)."""
    rows = {}
    for name, org, user, api, count in (
        ("acme", world.org, world.subscriber, "Weather", 120),
        ("globex", world.other_org, world.outsider, "Payments", 55),
    ):
        sub = subscription(org, user, api)
        rows[name] = {
            "usagerecord": UsageRecord.objects.create(
                organization=org, subscription=sub, hour=HOUR, count=count
            ),
            "flushbatch": FlushBatch.objects.create(
                batch_id=f"batch-{name}", rows=1, requests=count
            ),
            "quotaalert": QuotaAlert.objects.create(
                organization=org,
                subscription=sub,
                window_unit="day",
                window_start=HOUR,
                window_end=HOUR,
                threshold=80,
                quota_limit=100,
                used=count,
            ),
        }
    return rows


@pytest.fixture
def operator(db, client):
    user = User.objects.create_superuser(email="op@apimon.test", password="x")
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def changelist(client, model: str, **params):
    response = client.get(reverse(f"admin:gateway_{model}_changelist"), params)
    assert response.status_code == 200
    return response, {row.pk for row in response.context["cl"].result_list}


@pytest.mark.parametrize(
    ("model", "search"),
    [
        ("usagerecord", "owner@globex.test"),  # the subscriber
        ("flushbatch", "batch-globex"),
        ("quotaalert", "Payments"),  # the API
    ],
)
def test_the_operator_lists_and_searches_gateway_rows(operator, ledgers, model, search):
    acme, globex = ledgers["acme"][model], ledgers["globex"][model]

    assert changelist(operator, model)[1] == {acme.pk, globex.pk}  # everyone's

    found, shown = changelist(operator, model, q=search)

    assert shown == {globex.pk}
    assert "1 result (" in found.content.decode()
    assert changelist(operator, model, q="nobody-has-this")[1] == set()


def test_the_ledgers_show_the_counts(operator, ledgers):
    html = changelist(operator, "usagerecord")[0].content.decode()
    assert '<td class="field-count">120</td>' in html
    assert '<td class="field-count">55</td>' in html
    html = changelist(operator, "quotaalert")[0].content.decode()
    assert '<td class="field-used">55</td>' in html
    html = changelist(operator, "flushbatch")[0].content.decode()
    assert "batch-acme" in html and '<td class="field-requests">120</td>' in html


@pytest.mark.django_db
def test_the_operator_can_flush_from_the_admin(client, redis_db):
    from gateway import meter

    operator = User.objects.create_superuser(email="op@apimon.test", password="x")
    client.force_login(operator, backend="django.contrib.auth.backends.ModelBackend")
    redis_db.hset(meter.LIVE, "999999:0", 1)  # a deleted subscription's count
    batch = FlushBatch.objects.create(batch_id="seed")
    response = client.post(
        reverse("admin:gateway_flushbatch_changelist"),
        {"action": "flush_now", "_selected_action": [batch.pk]},
        follow=True,
    )
    assert "Flushed 1 requests in 1 batches." in response.content.decode()
