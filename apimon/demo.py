"""Demo data for `make run` (`manage.py seed_demo`): two organizations with 60 days
of history, so every page has something true to show on the first start.

- **Acme Weather** (`acme`) sells weather APIs and **Globex Payments** (`globex`)
  payments APIs; each has an owner, a publisher and subscribers (`ORGS`), a
  catalog of APIs and tiers (`publisher.demo.CATALOGS`), subscribers with
  applications, keys and subscriptions (`store.demo.SUBSCRIBERS`), and is on a
  paid platform plan with a connected (emulated) Stripe account and monetization
  enabled (`billing.demo.MONEY`).
- **The history** is played in time order, from 60 days ago to now: each
  subscription starts when the table says, through the store's services and the
  Stripe emulator's Checkout page; its hourly usage rows are drawn
  (`gateway.demo`), of tokens and credits too where its API has those meters; and
  between those moments the real billing engine runs at every time it has
  something due (`billing.demo.bill`: periods closed, invoices written, pushed to
  Stripe and paid, dunning), with the Stripe emulator's clock following, so
  invoices, payments and revenue carry the dates they would have.
- **Idempotent**: an organization that exists is left as it is (its logins are
  printed again); the history is written only for organizations made by this run,
  in one database transaction, into a new emulator (`billing.demo`).

No email is sent while seeding: the people are made up and the history is past.

Part of the composition root (docs/architecture.md): it seeds every app, so it may
import each of them; nothing in the apps imports it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache, partial
from typing import TYPE_CHECKING

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone

from apimon.models import Membership, Organization, Role, User
from apimon.services import trial_plan
from billing import demo as money
from billing.demo import history_emulator, pay_checkout
from gateway.demo import usage_rows, usage_write
from pricing.periods import add_cycles, period_containing
from publisher.demo import seed_catalog
from store import demo as store_demo

if TYPE_CHECKING:
    from store.demo import DemoApplication, DemoSubscription
    from store.models import Subscription

DEMO_PASSWORD = "apimon-demo-2026"
OPERATOR = "admin@apimon.localhost"
HISTORY = timedelta(days=60)


@dataclass(frozen=True)
class DemoOrg:
    slug: str
    name: str
    sells: str
    owner: str
    publisher: str
    subscriber: str  # the subscriber whose login is printed (store.demo has them all)


ORGS = (
    DemoOrg(
        "acme",
        "Acme Weather",
        "weather APIs",
        owner="owner@acme.localhost",
        publisher="publisher@acme.localhost",
        subscriber="subscriber@acme.localhost",
    ),
    DemoOrg(
        "globex",
        "Globex Payments",
        "payments APIs",
        owner="owner@globex.localhost",
        publisher="publisher@globex.localhost",
        subscriber="subscriber@globex.localhost",
    ),
)


@dataclass
class OrgResult:
    organization: Organization
    spec: DemoOrg
    logins: list[tuple[str, str]]  # (role, email) printed
    other_subscribers: list[str]
    users: dict[str, User] = field(default_factory=dict)  # by email


@dataclass
class DemoResult:
    organizations: list[OrgResult] = field(default_factory=list)
    operator: str = OPERATOR
    api_key: str = ""  # the README's key, only on the run that made it
    history: str = ""  # why no history was written now ("" if it was or exists)
    subscriptions: int = 0  # made by this run
    invoices: int = 0
    usage_rows: int = 0


def seed(*, now: datetime | None = None) -> DemoResult:
    """Seed what is missing (module docstring); `now` is when the history ends."""
    now = now or timezone.now()
    new = [s for s in ORGS if not Organization.objects.filter(slug=s.slug).exists()]
    # The transaction commits before the history's emulator replaces its state file.
    with (
        _no_email(),
        _quiet("stripe"),
        history_emulator() if new else nullcontext() as stripe,
        transaction.atomic(),
    ):
        return _seed(now=now, new=new, stripe=stripe)


def _seed(*, now: datetime, new: list[DemoOrg], stripe) -> DemoResult:
    setup_at = now - HISTORY - timedelta(hours=1)
    # One hash for every new account: hashing is slow on purpose, and it is the same
    # published password.
    password = cache(partial(make_password, DEMO_PASSWORD))
    result = DemoResult()
    _user(OPERATOR, password=password, joined=setup_at, staff=True)
    for spec in ORGS:
        org, _ = Organization.objects.get_or_create(
            slug=spec.slug,
            defaults={"name": spec.name, "plan": trial_plan(), "created_at": setup_at},
        )
        others = [
            s.email
            for s in store_demo.SUBSCRIBERS[spec.slug]
            if s.email != spec.subscriber
        ]
        org_result = OrgResult(
            organization=org,
            spec=spec,
            logins=[
                (Role.OWNER.value, spec.owner),
                (Role.PUBLISHER.value, spec.publisher),
                (Role.SUBSCRIBER.value, spec.subscriber),
            ],
            other_subscribers=others,
        )
        for role, email in [
            *org_result.logins,
            *((Role.SUBSCRIBER, e) for e in others),
        ]:
            user = _user(email, password=password, joined=setup_at)
            org_result.users[email] = user
            Membership.objects.get_or_create(
                user=user,
                organization=org,
                defaults={"role": role, "created_at": setup_at},
            )
        seed_catalog(org, actor=org_result.users[spec.publisher])
        result.organizations.append(org_result)
    fresh = [r for r in result.organizations if r.spec in new]
    if fresh:
        result.history = stripe.reason
        _Story(fresh, emulator=stripe.emulator, now=now, result=result).play()
    return result


def _user(
    email: str, *, password: Callable[[], str], joined: datetime, staff: bool = False
) -> User:
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create(
            email=email,
            password=password(),
            is_staff=staff,
            is_superuser=staff,
            date_joined=joined,
        )
        _verify_email(user)
    return user


def _verify_email(user: User) -> None:
    EmailAddress.objects.update_or_create(
        user=user, email=user.email, defaults={"verified": True, "primary": True}
    )


@dataclass(frozen=True)
class _Moment:
    """Something the story does at a time: a subscription starts, or is cancelled."""

    at: datetime
    org: OrgResult
    subscriber: User
    app: DemoApplication
    spec: DemoSubscription
    cancel: Subscription | None = None  # the subscription this moment cancels


class _Story:
    """The demo's history, played in time order from `now - HISTORY` to `now`."""

    def __init__(self, orgs: list[OrgResult], *, emulator, now: datetime, result):
        self.orgs, self.emulator, self.now, self.result = orgs, emulator, now, result
        self.start = now - HISTORY
        self.billed = [o.organization for o in orgs] if emulator is not None else []
        self.moments = sorted(
            (
                _Moment(_ago(now, sub), org, org.users[subscriber.email], app, sub)
                for org in orgs
                for subscriber in store_demo.SUBSCRIBERS[org.spec.slug]
                for app in subscriber.applications
                for sub in app.subscriptions
            ),
            key=lambda m: m.at,
        )

    def play(self) -> None:
        setup_at = self.start - timedelta(hours=1)
        if self.emulator is not None:
            self.emulator.start_clock_at(int(setup_at.timestamp()))
            for org in self.orgs:
                owner = org.users[org.spec.owner]
                money.monetize(org.organization, owner, emulator=self.emulator)
        t = setup_at - timedelta(seconds=1)  # the plans are invoiced at once
        while t < self.now:
            due = money.next_due(self.billed, after=t) if self.billed else None
            t = min(x for x in (self.now, due, self._next_moment()) if x is not None)
            if self.emulator is not None:
                money.advance_to(self.emulator, t)
            if self._next_moment() == t:
                self._happen(self.moments.pop(0))
                t -= timedelta(microseconds=1)  # what else is due at t comes next
            elif self.billed:
                self.result.invoices += len(money.bill(self.billed, at=t))

    def _next_moment(self) -> datetime | None:
        return self.moments[0].at if self.moments else None

    def _happen(self, moment: _Moment) -> None:
        if moment.cancel is not None:
            store_demo.cancel(moment.cancel, at=moment.at)
            return
        pay = None
        if self.emulator is not None:
            pay = partial(pay_checkout, self.emulator)
        subscription, raw = store_demo.subscribe(
            moment.org.organization,
            moment.subscriber,
            moment.app,
            moment.spec,
            at=moment.at,
            pay=pay,
        )
        if subscription is None:
            return
        self.result.subscriptions += 1
        if moment.app.name == store_demo.README_APPLICATION and raw:
            self.result.api_key = raw
        until = self.now
        if moment.spec.cancel is not None:
            cancel = _Moment(
                self.now - moment.spec.cancel,
                moment.org,
                moment.subscriber,
                moment.app,
                moment.spec,
                cancel=subscription,
            )
            self.moments = sorted([*self.moments, cancel], key=lambda m: m.at)
            until = min(until, _period_end(subscription, cancel.at))
        if subscription.started_at is not None and moment.spec.per_day:
            self._usage(moment, subscription, until)

    def _usage(
        self, moment: _Moment, subscription: Subscription, until: datetime
    ) -> None:
        seed = f"{moment.org.spec.slug}/{moment.app.name}/{moment.spec.api}"
        draw = partial(
            usage_rows,
            subscription,
            until=until,
            growth=moment.spec.growth,
            story_start=self.start,
            story_end=self.now,
        )
        rows = draw(per_day=moment.spec.per_day, seed=seed)
        for key, per_day in moment.spec.meters:  # tokens, credits: their own noise
            rows += draw(per_day=per_day, seed=f"{seed}/{key}", meter_key=key)
        self.result.usage_rows += usage_write(rows)


def _ago(now: datetime, spec: DemoSubscription) -> datetime:
    return add_cycles(now - spec.started, "month", -spec.months)


def _period_end(subscription: Subscription, at: datetime) -> datetime:
    """The end of the period that holds `at`: when a cancellation at `at` ends it."""
    cycle = subscription.tier_version.billing_cycle
    return period_containing(subscription.started_at, cycle, at)[2]


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """stripe-python logs every request at INFO: hundreds of lines while seeding."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        log.setLevel(level)


@contextmanager
def _no_email() -> Iterator[None]:
    mailers = settings.MAILERS
    settings.MAILERS = {
        "default": {"BACKEND": "django.core.mail.backends.dummy.EmailBackend"}
    }
    try:
        yield
    finally:
        settings.MAILERS = mailers
