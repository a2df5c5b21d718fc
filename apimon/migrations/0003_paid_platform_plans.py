from decimal import Decimal

from django.db import migrations

# The paid plans an organization upgrades to from the trial. The operator
# edits prices and commissions in the Django admin; this only seeds them once.
PLANS = [
    {
        "slug": "starter",
        "name": "Starter",
        "description": "Monetize your APIs: connect your Stripe account, sell "
        "commercial tiers, invoice subscribers.",
        "monthly_price_minor": 2900,
        "commission_percent": Decimal("10.00"),
        "sort_order": 10,
    },
    {
        "slug": "growth",
        "name": "Growth",
        "description": "Everything in Starter with a lower platform commission, for "
        "APIs that already sell.",
        "monthly_price_minor": 9900,
        "commission_percent": Decimal("5.00"),
        "sort_order": 20,
    },
]


def seed_paid_plans(apps, schema_editor):
    PlatformPlan = apps.get_model("apimon", "PlatformPlan")
    for plan in PLANS:
        PlatformPlan.objects.get_or_create(
            slug=plan["slug"],
            defaults={
                **plan,
                "currency": "usd",
                "allows_monetization": True,
                "is_trial": False,
                "is_active": True,
            },
        )


def remove_paid_plans(apps, schema_editor):
    PlatformPlan = apps.get_model("apimon", "PlatformPlan")
    Organization = apps.get_model("apimon", "Organization")
    slugs = [plan["slug"] for plan in PLANS]
    if not Organization.objects.filter(plan__slug__in=slugs).exists():
        PlatformPlan.objects.filter(slug__in=slugs).delete()


class Migration(migrations.Migration):
    dependencies = [("apimon", "0002_trial_plan")]
    operations = [migrations.RunPython(seed_paid_plans, remove_paid_plans)]
