"""The data a fault scenario runs on, written through apimon's own models and
services in a child process that has the stack's settings:

    echo '{"backend": "http://127.0.0.1:P", "metered": 20}' | \
        python -m tests.faults.harness.world

prints one JSON line: the organization, the gateway path of its API, and per
subscription its id, raw API key, tier kind and the tag the load generator sends
(X-Count-Tag, counted by the sample backend).

- `metered` subscriptions: a COMMERCIAL per-request tier (USD `unit_price`, weekly
  cycle), each subscriber with a Stripe customer and a card on the organization's
  connected account, so closing the period writes a `renewal` invoice whose total is
  requests × price and the push charges it. `period_end_in` (seconds) sets when the
  current period ends: the subscription started one week before that.
- `limited` subscriptions: a FREE tier with a daily hard quota (`quota`) and a burst
  rate limit (`rate` per second), for the soak.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from decimal import Decimal
from typing import Any

import django
import httpx


def build(spec: dict[str, Any]) -> dict[str, Any]:
    from django.utils import timezone

    from apimon import stripe_client as sc
    from apimon.models import Membership, PlatformPlan, Role, User
    from apimon.services import organization_create
    from billing.models import StripeConnection
    from pricing.periods import period_bounds
    from pricing.rating import Pricing, PricingModel
    from publisher import services as publisher_services
    from publisher.models import Api, ApiState, ApiTier
    from store.keys import generate_key
    from store.models import (
        ApiKey,
        Application,
        Subscription,
        SubscriptionState,
    )

    now = timezone.now()
    slug_hint = spec.get("name", "faults")
    owner = User.objects.create_user(
        email=f"owner@{slug_hint}.test", password=spec.get("password", "faults-pw-1")
    )
    org = organization_create(user=owner, name=slug_hint.title())
    org.plan = PlatformPlan.objects.create(
        name=f"Growth {org.slug}",
        slug=f"growth-{org.slug}",
        monthly_price_minor=4900,
        commission_percent=Decimal("10"),
        allows_monetization=True,
    )
    org.save(update_fields=["plan"])
    api = Api.objects.create(
        organization=org,
        name="Weather",
        version="v1",
        context="weather",
        backend_url=spec["backend"].rstrip("/") + "/_bench",
        state=ApiState.PUBLISHED,
    )
    account = connect_account(sc)
    StripeConnection.objects.create(
        organization=org,
        account_id=account,
        monetization_enabled=True,
        charges_enabled=True,
    )
    metered_tier = publisher_services.tier_create(
        organization=org,
        actor=None,
        name="Metered",
        price=publisher_services.TierPrice(
            pricing=Pricing(
                PricingModel.PER_UNIT,
                "usd",
                unit_price=Decimal(spec.get("unit_price", "0.01")),
            ),
            billing_cycle="week",
        ),
    )
    limited_tier = publisher_services.tier_create(
        organization=org,
        actor=None,
        name="Limited",
        limits=publisher_services.TierLimits(
            quota_limit=spec.get("quota", 50),
            quota_unit="day",
            stop_on_quota_reach=True,
            rate_limit=spec.get("rate", 5),
            rate_unit="second",
        ),
    )
    for tier in (metered_tier, limited_tier):
        ApiTier.objects.get_or_create(api=api, tier=tier)

    period_end = now + timedelta(seconds=spec.get("period_end_in", 7 * 86400))
    started = period_end - timedelta(days=7)
    subs = []
    counts = [("metered", metered_tier, spec.get("metered", 0))]
    counts.append(("limited", limited_tier, spec.get("limited", 0)))
    for kind, tier, count in counts:
        for n in range(count):
            user = User.objects.create_user(
                email=f"{kind}{n}@{slug_hint}.test",
                password=spec.get("password", "faults-pw-1"),
            )
            Membership.objects.create(user=user, organization=org, role=Role.SUBSCRIBER)
            app = Application.objects.create(
                organization=org, owner=user, name=f"{kind} app {n}"
            )
            customer = None
            version = tier.current_version
            sub = Subscription(
                organization=org,
                application=app,
                api=api,
                tier=tier,
                tier_version=version,
                subscriber=user,
                state=SubscriptionState.ACTIVE,
                started_at=started,
            )
            sub.current_period_start, sub.current_period_end = period_bounds(
                started, version.billing_cycle, 0
            )
            if kind == "metered":
                customer = customer_with_card(sc, org, user, account)
                sub.customer = customer
                sub.next_invoice_at = sub.current_period_end
            sub.save()
            new = generate_key()
            ApiKey.objects.create(
                organization=org,
                application=app,
                prefix=new.prefix,
                key_hash=new.key_hash,
            )
            subs.append(
                {"id": sub.pk, "key": new.raw, "kind": kind, "tag": f"sub-{sub.pk}"}
            )
    shoppers = []
    for n in range(spec.get("shoppers", 0)):
        # Subscribers with an application and no subscription yet: they subscribe
        # through the store (Checkout) during the scenario.
        user = User.objects.create_user(
            email=f"shopper{n}@{slug_hint}.test",
            password=spec.get("password", "faults-pw-1"),
        )
        Membership.objects.create(user=user, organization=org, role=Role.SUBSCRIBER)
        app = Application.objects.create(
            organization=org, owner=user, name=f"shopper app {n}"
        )
        shoppers.append(
            {
                "email": user.email,
                "password": spec.get("password", "faults-pw-1"),
                "application": app.pk,
                "tier": metered_tier.pk,
            }
        )
    # The period ends `period_end_in` seconds after the world is ready (making the
    # customers takes a while on a busy machine).
    period_end = timezone.now() + timedelta(
        seconds=spec.get("period_end_in", 7 * 86400)
    )
    started = period_end - timedelta(days=7)
    for sub in Subscription.objects.filter(organization=org):
        start, end = period_bounds(started, sub.tier_version.billing_cycle, 0)
        Subscription.objects.filter(pk=sub.pk).update(
            started_at=started,
            current_period_start=start,
            current_period_end=end,
            next_invoice_at=end if sub.customer_id else None,
        )
    return {
        "org": org.slug,
        "organization_id": org.pk,
        "owner": owner.email,
        "account": account,
        "path": f"/gateway/{org.slug}/weather/v1",
        "api_id": api.pk,
        "period_end": period_end.isoformat(),
        "subscriptions": subs,
        "shoppers": shoppers,
    }


def connect_account(sc) -> str:
    """ "Connect with Stripe" against the emulator over HTTP: its authorize form,
    then apimon's code exchange."""
    url = sc.oauth_authorize_url(
        state="faults", redirect_uri="http://127.0.0.1/stripe/callback/"
    )
    answer = httpx.post(
        url,
        data={
            "choice": "new",
            "email": "owner@faults.test",
            "business_name": "Faults Weather",
            "country": "US",
        },
        timeout=30,
    )
    code = httpx.URL(answer.headers["location"]).params["code"]
    return sc.oauth_exchange(code)["stripe_user_id"]


def customer_with_card(sc, org, user, account):
    from store.models import StripeCustomer

    client = sc.get_client()
    options = sc.request_options(account=account)
    customer = client.v1.customers.create({"email": user.email}, options)
    pm = client.v1.payment_methods.attach(
        "pm_card_visa", {"customer": customer.id}, options
    )
    client.v1.customers.update(
        customer.id, {"invoice_settings": {"default_payment_method": pm.id}}, options
    )
    return StripeCustomer.objects.create(
        organization=org,
        user=user,
        stripe_account_id=account,
        stripe_customer_id=customer.id,
        default_payment_method_id=pm.id,
    )


if __name__ == "__main__":
    django.setup()
    print(json.dumps(build(json.load(sys.stdin))))
