"""The operator adds platform plans in the Django admin."""

from decimal import Decimal

import pytest
from django.urls import reverse

from apimon.models import PlatformPlan, User


@pytest.mark.django_db
def test_a_new_plan_starts_from_the_platform_currency_and_commission(client, settings):
    settings.PLATFORM_CURRENCY = "eur"
    settings.PLATFORM_DEFAULT_COMMISSION_PERCENT = Decimal("12.5")
    operator = User.objects.create_superuser(email="op@apimon.test", password="x")
    client.force_login(operator, backend="django.contrib.auth.backends.ModelBackend")
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
