"""The demo's subscribers (called from `apimon.demo.seed`): per organization, who
subscribes, with which applications, to which API on which tier, when, how much
they call it and with which card, as data (`SUBSCRIBERS`).

`subscribe` makes one of them through the store's own services, as a subscriber
would: the application, the subscription, Checkout with the card (for a paid tier,
through a `pay` function the caller gives: it types the card into the Stripe
emulator's Checkout page) and a key. The services act at the wall clock's now; the
demo's story happened earlier, so `subscribe` then moves what it made to the
story's time (`_start_at`), before anything reads it: the subscription starts then,
with the periods, trial and first invoice date the store's activation gives a
subscription that starts at that time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from apimon.models import Organization, User
from publisher.models import Api, Tier
from store import lifecycle, services
from store.models import (
    ApiKey,
    Application,
    StripeCustomer,
    Subscription,
    SubscriptionEventKind,
)

VISA = "4242 4242 4242 4242"
MASTERCARD = "5555 5555 5555 4444"
JCB = "3566 0020 2036 0505"
# Saved by Checkout, then every charge is declined (Stripe's test card).
DECLINED_CHARGES = "4000 0000 0000 0341"

# The application whose key `make run` prints (README: the first gateway call).
README_APPLICATION = "Weather dashboard"


@dataclass(frozen=True)
class DemoSubscription:
    api: str  # the API's context
    tier: str  # the tier's name
    started: timedelta  # how long before the seed's now it started …
    months: int = 0  # … plus this many calendar months
    per_day: int = 0  # requests a day on average (gateway.demo draws the hours)
    growth: float = 0.0  # how much daily use grows over the demo (0.3: +30 %)
    card: str = VISA  # typed into Checkout for a paid tier
    abandoned: bool = False  # Checkout left unfinished: PENDING_PAYMENT
    cancel: timedelta | None = None  # cancel at period end, this long before now
    # Units a day on average of the API's other meters: (("tokens", 280_000),).
    meters: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class DemoApplication:
    name: str
    description: str
    subscriptions: tuple[DemoSubscription, ...]


@dataclass(frozen=True)
class DemoSubscriber:
    email: str
    applications: tuple[DemoApplication, ...]


def days(n: float, hours: float = 0) -> timedelta:
    return timedelta(days=n, hours=hours)


Sub = DemoSubscription
App = DemoApplication

SUBSCRIBERS: dict[str, tuple[DemoSubscriber, ...]] = {
    "acme": (
        DemoSubscriber(
            "subscriber@acme.localhost",
            (
                App(
                    README_APPLICATION,
                    "Shows the weather in a few cities.",
                    (Sub("weather", "Free", days(58, 3), per_day=220, growth=0.2),),
                ),
                App(
                    "Mobile app",
                    "The iOS and Android weather app.",
                    (
                        Sub("weather", "Starter", days(57, 5), per_day=420, growth=0.5),
                        Sub("quotes", "Free", days(30, 2), per_day=40),
                    ),
                ),
                App(
                    "Writing assistant",
                    "Drafts weather reports from the forecast.",
                    (
                        Sub(
                            "text",
                            "Text Pro",
                            days(41, 6),
                            per_day=700,
                            growth=0.3,
                            meters=(("tokens", 280_000),),
                        ),
                    ),
                ),
            ),
        ),
        DemoSubscriber(
            "dev@skyline.localhost",
            (
                App(
                    "Skyline iOS",
                    "Weather widgets and a quote of the day.",
                    (
                        Sub(
                            "weather",
                            "Pay as you go",
                            days(55, 7),
                            per_day=3_500,
                            growth=0.3,
                            card=MASTERCARD,
                        ),
                        Sub(
                            "quotes",
                            "Enterprise",
                            days(45, 1),
                            per_day=6_000,
                            card=MASTERCARD,
                        ),
                    ),
                ),
            ),
        ),
        DemoSubscriber(
            "data@meteo-eu.localhost",
            (
                App(
                    "Meteo EU site",
                    "Air quality on every city page.",
                    (Sub("air", "Europe Pro", days(52, 9), per_day=900, growth=0.1),),
                ),
                App(
                    "Meteo EU batch",
                    "Nightly air quality maps.",
                    (
                        Sub(
                            "air",
                            "Europe Volume",
                            days(40, 4),
                            per_day=9_000,
                            growth=0.4,
                        ),
                    ),
                ),
            ),
        ),
    ),
    "globex": (
        DemoSubscriber(
            "subscriber@globex.localhost",
            (
                App(
                    "Checkout service",
                    "Takes payments for the Northwind web shop.",
                    (
                        Sub("payments", "Launch", days(56, 2), per_day=800, growth=0.4),
                        Sub("fraud", "Per check", days(50, 6), per_day=750),
                    ),
                ),
                App(
                    "Staging",
                    "The shop's test environment.",
                    (Sub("payments", "Sandbox", days(59, 1), per_day=40),),
                ),
            ),
        ),
        DemoSubscriber(
            "ops@tokyo-mart.localhost",
            (
                App(
                    "Tokyo Mart POS",
                    "Prices in the tills, in yen and dollars.",
                    (
                        Sub(
                            "fx",
                            "FX weekly",
                            days(54, 8),
                            per_day=2_400,
                            card=JCB,
                            cancel=days(12),
                        ),
                        Sub("fraud", "Volume checks", days(48, 3), per_day=1_600),
                    ),
                ),
                App(
                    "Tokyo Mart analytics",
                    "Daily revenue reports in three currencies.",
                    (
                        Sub(
                            "fx",
                            "FX metered",
                            days(35, 5),
                            per_day=5_200,
                            growth=0.2,
                            card=JCB,
                            meters=(("credits", 11_000),),
                        ),
                    ),
                ),
            ),
        ),
        DemoSubscriber(
            "finance@initech.localhost",
            (
                App(
                    "Initech billing",
                    "Charges Initech's customers every month.",
                    # Its first invoice, two hours ago, is declined: ON_HOLD.
                    (
                        Sub(
                            "payments",
                            "Scale",
                            days(0, 2),
                            months=1,
                            per_day=4_000,
                            card=DECLINED_CHARGES,
                        ),
                    ),
                ),
                App(
                    "Initech reports",
                    "Month-end reports.",
                    (Sub("fx", "FX metered", days(3, 4), abandoned=True),),
                ),
            ),
        ),
    ),
}


# Types a card into a Checkout page; returns the Checkout Session's id.
Pay = Callable[[str, str], str]


def subscribe(
    org: Organization,
    subscriber: User,
    app: DemoApplication,
    spec: DemoSubscription,
    *,
    at: datetime,
    pay: Pay | None,
) -> tuple[Subscription | None, str]:
    """Make the subscription as a subscriber would, started at `at`; returns it
    (None: a paid tier and no `pay`, i.e. no Stripe) and the raw key of its
    application if one was made now (else "")."""
    api = Api.objects.get(organization=org, context=spec.api, version="v1")
    tier = Tier.objects.get(organization=org, name=spec.tier)
    if tier.is_commercial and pay is None:
        return None, ""
    application = Application.objects.filter(
        organization=org, owner=subscriber, name=app.name, deleted_at=None
    ).first()
    raw = ""
    if application is None:
        application = services.application_create(
            organization=org,
            owner=subscriber,
            name=app.name,
            description=app.description,
        )
        raw = services.api_key_create(
            application=application, actor=subscriber, name="demo"
        ).raw
        Application.objects.filter(pk=application.pk).update(created_at=at)
        ApiKey.objects.filter(application=application).update(created_at=at)
    result = services.subscription_create(
        application=application, api=api, tier=tier, actor=subscriber
    )
    subscription = result.subscription
    if result.checkout_url and not spec.abandoned:
        session_id = pay(result.checkout_url, spec.card)
        outcome = services.subscription_confirm_checkout(
            subscription=subscription, session_id=session_id
        )
        if outcome != services.CheckoutOutcome.DONE:
            raise RuntimeError(f"demo Checkout of {subscription}: {outcome}")
    subscription.refresh_from_db()
    _start_at(subscription, at)
    return subscription, raw


def _start_at(subscription: Subscription, at: datetime) -> None:
    """Move a subscription made just now to `at`: created then, and (if it started)
    activated then, with everything the activation derives from its start."""
    lifecycle.backdate(subscription, at=at)
    if subscription.customer_id:
        StripeCustomer.objects.filter(
            pk=subscription.customer_id, created_at__gt=at
        ).update(created_at=at)


def cancel(subscription: Subscription, *, at: datetime) -> None:
    """The subscriber cancels at the end of the period, at `at`."""
    services.subscription_cancel(
        subscription=subscription, actor=subscription.subscriber
    )
    subscription.events.filter(kind=SubscriptionEventKind.CANCEL_SCHEDULED).update(
        at=at
    )


def session_id_from(success_url: str) -> str:
    """The Checkout Session id in the URL Checkout sent the browser back to."""
    return parse_qs(urlsplit(success_url).query)["session_id"][0]
