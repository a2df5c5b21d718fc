from django.db import migrations


def seed_trial_plan(apps, schema_editor):
    PlatformPlan = apps.get_model("apimon", "PlatformPlan")
    PlatformPlan.objects.get_or_create(
        slug="trial",
        defaults={
            "name": "Trial",
            "description": "Free while you set up: publish APIs and free tiers. "
            "Upgrade to a paid plan to monetize.",
            "monthly_price_minor": 0,
            "currency": "usd",
            "commission_percent": 0,
            "allows_monetization": False,
            "is_trial": True,
            "sort_order": 0,
        },
    )


class Migration(migrations.Migration):
    dependencies = [("apimon", "0001_initial")]
    operations = [migrations.RunPython(seed_trial_plan, migrations.RunPython.noop)]
