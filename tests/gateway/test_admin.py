"""The operator sees the meter's ledgers in the Django admin."""

import pytest
from django.urls import reverse

from apimon.models import User


@pytest.mark.django_db
@pytest.mark.parametrize("model", ["usagerecord", "flushbatch", "quotaalert"])
def test_the_operator_lists_and_searches_gateway_rows(client, model):
    operator = User.objects.create_superuser(email="op@apimon.test", password="x")
    client.force_login(operator, backend="django.contrib.auth.backends.ModelBackend")
    url = reverse(f"admin:gateway_{model}_changelist")
    assert client.get(url).status_code == 200
    assert client.get(url, {"q": "acme"}).status_code == 200


@pytest.mark.django_db
def test_the_operator_can_flush_from_the_admin(client, redis_db):
    from gateway import meter
    from gateway.models import FlushBatch

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
