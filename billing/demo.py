"""The demo's money (called from `apimon.demo.seed`): each organization's paid
platform plan, its connected (emulated) Stripe account and monetization, and the
billing engine's runs over the demo's history, through the real services and the
Stripe emulator's own pages (Checkout, Connect's OAuth page).

Where the Stripe history is written (`history_emulator`): the demo's invoices,
payments and their dates must be in the emulator that `make run` serves, so that
the hosted invoice pages and PDFs open. `make run` seeds before it starts the
emulator process, so `seed_demo` opens the emulator's own state file
(`STRIPE_EMULATOR_DB`, as `python -m stripe_emulator` does) inside its own process
through `apimon.stripe_client.use_emulator`, starts that new emulator's clock 60
days back (`Emulator.start_clock_at`) and moves it forward with the story, so every
Stripe object carries the time it happened at. It writes to a copy that replaces
the state file only once the database transaction has committed: an interrupted
seed leaves nothing behind. With an emulator already running, or one that already
holds other objects, or real Stripe keys, the history cannot be written that way
and `seed_demo` says so (the rest of the demo is seeded).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.urls import reverse

from apimon import stripe_client as sc
from apimon.models import Organization, PlatformPlan, User
from billing import engine, services
from billing.models import PlatformSubscription, PlatformSubscriptionStatus
from billing.push import invoice_push
from billing.services import BillingDetails

SESSION_KEY = "seed_demo"  # the owner's "browser session" that connects Stripe
PLAN_CARD = "4242 4242 4242 4242"


@dataclass(frozen=True)
class DemoMoney:
    plan: str  # the PlatformPlan's slug
    details: BillingDetails  # what the owner types on the upgrade page
    country: str  # of the Stripe account the owner connects


MONEY: dict[str, DemoMoney] = {
    "acme": DemoMoney(
        "starter",
        BillingDetails(
            name="Acme Weather Inc.",
            line1="1 Market Street",
            city="San Francisco",
            state="CA",
            postal_code="94105",
            country="US",
            email="billing@acme.localhost",
            phone="+14155550100",
        ),
        country="US",
    ),
    "globex": DemoMoney(
        "growth",
        BillingDetails(
            name="Globex Payments Ltd",
            line1="2 Grand Canal Square",
            city="Dublin",
            postal_code="D02 P820",
            country="IE",
            email="billing@globex.localhost",
            phone="+35315550100",
        ),
        country="IE",
    ),
}


# --- Where the Stripe history goes -------------------------------------------------


@dataclass
class HistoryStripe:
    emulator: object | None  # stripe_emulator.emulator.Emulator, or None
    reason: str = ""  # why there is none


def _emulator_answers(url: str) -> bool:
    import httpx

    try:
        httpx.get(url.rstrip("/") + "/_emulator/", timeout=1.0)
    except httpx.HTTPError:
        return False
    return True


@contextmanager
def history_emulator() -> Iterator[HistoryStripe]:
    """A new Stripe emulator to write the demo's history into, used by every Stripe
    call of this process until the block ends (module docstring); or none, with
    the reason. The state file is replaced only when the block ends without an
    error."""
    if not settings.STRIPE_EMULATOR:
        yield HistoryStripe(
            None, "apimon uses real Stripe keys; the demo's history needs the emulator"
        )
        return
    if settings.STRIPE_EMULATOR_IN_PROCESS:
        from stripe_emulator.inprocess import get_inprocess_emulator

        sc.get_client()  # built first: building it sets the webhook URL
        emulator = get_inprocess_emulator()
        if not emulator.is_new():
            yield HistoryStripe(None, "the in-process Stripe emulator holds objects")
            return
        webhook_url, emulator.config.webhook_url = emulator.config.webhook_url, None
        try:
            yield HistoryStripe(emulator)
        finally:
            emulator.config.webhook_url = webhook_url
        return
    with _state_file_emulator() as history:
        yield history


@contextmanager
def _state_file_emulator() -> Iterator[HistoryStripe]:
    from stripe_emulator.config import EmulatorConfig
    from stripe_emulator.emulator import Emulator

    url = settings.STRIPE_EMULATOR_URL
    if _emulator_answers(url):
        yield HistoryStripe(
            None,
            f"the Stripe emulator at {url} is running (stop `make run`, then run "
            "seed_demo, or start from scratch with `make clean`)",
        )
        return
    config = EmulatorConfig.from_env(
        client_id=settings.STRIPE_CONNECT_CLIENT_ID,
        webhook_secret=settings.STRIPE_WEBHOOK_SECRET,
    )
    state = Path(config.db_path)
    if state.exists():
        current = Emulator(EmulatorConfig(db_path=str(state), webhook_url=None))
        try:
            new = current.is_new()
        finally:
            current.close()
        if not new:
            yield HistoryStripe(
                None,
                f"the Stripe emulator's state ({state}) already holds objects "
                "(`make clean` starts from scratch)",
            )
            return
    seeding = state.with_name(state.name + ".seeding")
    _remove_sqlite(seeding)
    config.db_path = str(seeding)
    # No webhooks: the seed applies every outcome itself, synchronously (the
    # events stay in the emulator's event list).
    config.webhook_url = None
    emulator = Emulator(config)
    try:
        with sc.use_emulator(emulator):
            yield HistoryStripe(emulator)
    except BaseException:
        emulator.close()
        _remove_sqlite(seeding)
        raise
    emulator.close()
    _remove_sqlite(state)
    os.replace(seeding, state)


def _remove_sqlite(path: Path) -> None:
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        name.unlink(missing_ok=True)


def emulator_now(emulator) -> datetime:
    return datetime.fromtimestamp(emulator.now(), UTC)


def advance_to(emulator, at: datetime) -> None:
    """Move the emulator's clock forward to `at`, running Stripe's own schedules on
    the way (payment retries, expiring Checkout Sessions)."""
    ahead = at.timestamp() - emulator.now()
    if ahead > 0:
        emulator.advance(ahead)


# --- The emulator's pages, as the owner's and subscribers' browsers use them -------


def pay_checkout(emulator, checkout_url: str, card: str) -> str:
    """Type `card` into a Checkout page; the Checkout Session's id."""
    from stripe_emulator import testing

    status, location = testing.submit_card(emulator, checkout_url, card)
    if status not in (302, 303):
        raise RuntimeError(f"the demo's card was refused by Checkout: {location[:200]}")
    return parse_qs(urlsplit(location).query)["session_id"][0]


# --- Monetization -------------------------------------------------------------------


def monetize(org: Organization, owner: User, *, emulator) -> None:
    """The owner upgrades to the demo's paid plan, connects a new Stripe account and
    enables monetization, at the emulator's time (the times apimon records are set
    to it). Each step is skipped if it was done."""
    money = MONEY[org.slug]
    at = emulator_now(emulator)
    platform = PlatformSubscription.objects.filter(organization=org).first()
    if platform is None or platform.status != PlatformSubscriptionStatus.ACTIVE:
        _upgrade(org, money, emulator=emulator, at=at)
        org.refresh_from_db()
    if services.connected_account(org) is None:
        _connect(org, owner, money, emulator=emulator, at=at)
    connection = services.connected_account(org)
    if not connection.monetization_enabled:
        services.monetization_enable(organization=org)
        connection.refresh_from_db()
        connection.monetization_enabled_at = at
        connection.save(update_fields=["monetization_enabled_at"])


def _upgrade(org: Organization, money: DemoMoney, *, emulator, at: datetime) -> None:
    plan = PlatformPlan.objects.get(slug=money.plan)
    site = settings.SITE_URL
    done = reverse("monetization:upgrade-done", args=[org.slug])
    back = reverse("monetization:upgrade", args=[org.slug, plan.slug])
    url = services.platform_checkout_start(
        organization=org,
        plan=plan,
        details=money.details,
        success_url=f"{site}{done}?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=f"{site}{back}?cancelled=1",
    )
    session_id = pay_checkout(emulator, url, PLAN_CARD)
    platform, _ = services.platform_checkout_complete(
        session_id=session_id, organization=org
    )
    # Invoiced monthly in advance from the upgrade, which happened at `at`.
    platform.started_at = platform.next_invoice_at = at
    platform.save(update_fields=["started_at", "next_invoice_at"])


def _connect(
    org: Organization, owner: User, money: DemoMoney, *, emulator, at: datetime
) -> None:
    from stripe_emulator import testing

    url = services.stripe_connect_start(
        organization=org, user=owner, session_key=SESSION_KEY
    )
    back = testing.authorize(
        emulator,
        url,
        email=owner.email,
        business_name=org.name,
        country=money.country,
    )
    answer = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
    connection = services.stripe_connect_complete(
        state=answer["state"],
        code=answer["code"],
        error="",
        user=owner,
        session_key=SESSION_KEY,
    )
    connection.connected_at = at
    connection.save(update_fields=["connected_at"])


# --- The billing job ----------------------------------------------------------------


def bill(organizations: list[Organization], *, at: datetime) -> list[int]:
    """What the beat job does at `at` for these organizations: close the due periods
    and write their invoices, invoice the platform plans that are due, push each
    invoice to Stripe and pay it (as the push task would, at once), then block
    what stayed unpaid past its grace period. Returns the invoices written."""
    ids: list[int] = []
    for org in organizations:
        ids += engine.billing_run(
            now=at, organization=org, flush=False, enqueue_push=False
        ).invoice_ids
        ids += engine.platform_billing_run(
            now=at, organization=org, enqueue_push=False
        ).invoice_ids
    for pk in ids:
        invoice_push(invoice_id=pk)
    services.dunning_run(now=at)
    return ids


def next_due(organizations: list[Organization], *, after: datetime) -> datetime | None:
    """When the billing job next has something to do for these organizations."""
    from django.db.models import Min

    from store.models import Subscription, SubscriptionState

    settle = engine.settle_delay()
    times = [
        Subscription.objects.filter(
            organization__in=organizations, next_invoice_at__gt=after - settle
        ).aggregate(t=Min("next_invoice_at"))["t"],
        PlatformSubscription.objects.filter(
            organization__in=organizations, next_invoice_at__gt=after
        ).aggregate(t=Min("next_invoice_at"))["t"],
        Subscription.objects.filter(
            organization__in=organizations,
            state=SubscriptionState.ON_HOLD,
            grace_until__gt=after,
        ).aggregate(t=Min("grace_until"))["t"],
    ]
    if times[0] is not None:
        times[0] += settle
    return min((t for t in times if t is not None), default=None)
