"""A tenant with one of everything (so that every route with an id reaches its form),
a client per role, and the row counts that must not move when a request is refused."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from django.apps import apps
from django.contrib.messages import ERROR
from django.core.cache import cache
from django.db import connection, transaction
from django.forms import BaseForm, BaseFormSet
from django.test import Client

from apimon.models import Invitation, Membership, PlatformPlan
from apimon.services import invitation_create
from billing.models import (
    CatalogDrift,
    CatalogObject,
    StripeConnection,
)
from gateway.ingest import ingest_token_create
from publisher.meters import meter_create
from publisher.models import LifecycleAction, MeterSource, QuotaUnit
from store import services as store_services
from tests.billing.conftest import paid_invoice
from tests.fixtures.stripe import connect_account
from tests.gateway.conftest import (  # noqa: F401 - the gateway's fixtures, reused
    backend_url,
    gateway,
    metering,
    redis_db,
    short_lived_connections,
)
from tests.publisher.helpers import make_api, make_tier
from tests.publisher.test_openapi import SPEC
from tests.store.conftest import (  # noqa: F401 - clean_redis: pages read counters
    clean_redis,
    flat,
)

# Examples per route of the fuzz tests (see tests/fuzz/test_forms.py).
EXAMPLES = int(os.environ.get("APIMON_FUZZ_EXAMPLES", "6"))
ROLES = ("anonymous", "subscriber", "publisher", "owner", "outsider")
# Rows a refused request must leave alone: every table of apimon's apps and the
# accounts' e-mail addresses (sessions and admin logs are not the tenants' data).
COUNTED_APPS = ("apimon", "publisher", "store", "gateway", "billing", "account")
BIG = 2**63 + 7  # past PostgreSQL's bigint


@dataclass
class FuzzWorld:
    world: object
    clients: dict[str, Client]
    path_values: dict[str, list[str]]
    ingest_token: str
    account: str

    @contextmanager
    def example(self) -> Iterator[None]:
        """One example: every role logged in, from the same rows and an empty cache
        each time, and everything it wrote rolled back afterwards, so that an
        example replays the same way (hypothesis replays the one that failed to
        shrink it)."""
        cache.clear()
        with transaction.atomic():
            self.login_all()
            yield
            transaction.set_rollback(True)

    def login_all(self) -> None:
        """Log every role in (an example may have logged one out)."""
        for role, client in self.clients.items():
            user = getattr(self.world, role, None)
            if user is not None:
                client.force_login(
                    user, backend="django.contrib.auth.backends.ModelBackend"
                )


def _counted_tables() -> list[str]:
    return [
        model._meta.db_table
        for model in apps.get_models()
        if model._meta.app_label in COUNTED_APPS and not model._meta.proxy
    ]


def row_counts() -> tuple[int, ...]:
    """One query: the row count of every counted table."""
    tables = _counted_tables()
    quote = connection.ops.quote_name
    sql = "SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {quote(t)})" for t in tables)
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return tuple(cursor.fetchone())


def count_changes(before: tuple, after: tuple) -> dict[str, tuple[int, int]]:
    return {
        table: (b, a)
        for table, b, a in zip(_counted_tables(), before, after, strict=True)
        if b != a
    }


def is_refusal(response) -> bool:
    """A 4xx, a page that shows a form with errors, or an error message. (A warning
    reports a success with a catch: drift found, a card not saved yet.)"""
    if response.status_code >= 400:
        return True
    request = getattr(response, "wsgi_request", None)
    storage = getattr(request, "_messages", None)
    queued = getattr(storage, "_queued_messages", [])
    if any(message.level >= ERROR for message in queued):
        return True
    contexts = response.context
    if contexts is None:
        return False
    for context in contexts if isinstance(contexts, list) else [contexts]:
        for value in context.flatten().values():
            if (
                isinstance(value, BaseForm | BaseFormSet)
                and value.is_bound
                and any(value.errors)
            ):
                return True
    return False


@pytest.fixture
def fuzz_world(world, stripe_emulator, mailoutbox) -> Iterator[FuzzWorld]:
    # Rate limits (allauth's and apimon's) count in the cache: start from none and
    # leave none behind for the tests that follow.
    cache.clear()
    org = world.org
    org.plan = PlatformPlan.objects.get(slug="starter")
    org.save(update_fields=["plan"])
    account = connect_account(stripe_emulator, business_name="Acme APIs")
    StripeConnection.objects.create(
        organization=org, account_id=account, monetization_enabled=True
    )
    free = make_tier(org, "Free", quota_limit=1000, quota_unit=QuotaUnit.DAY)
    gold = make_tier(org, "Gold", price=flat())
    api = make_api(
        org,
        tiers=[free, gold],
        publish=True,
        documentation="# Weather\n\nCall **/current**.",
        openapi_spec=SPEC,
        openapi_filename="weather.json",
        tags=["weather"],
    )
    draft = make_api(org, name="Draft", context="draft", tiers=[free])
    tokens = meter_create(
        api=api,
        actor=None,
        key="tokens",
        display_name="Tokens",
        unit_label="token",
        display_scale=1000,
        source=MeterSource.RESPONSE,
    )
    app = store_services.application_create(
        organization=org, owner=world.subscriber, name="Dashboard"
    )
    issued = store_services.api_key_create(
        application=app, actor=world.subscriber, name="production"
    )
    subscription = store_services.subscription_create(
        application=app, api=api, tier=free, actor=world.subscriber
    ).subscription
    invoice = paid_invoice(subscription, version=gold.current_version)
    product = CatalogObject.objects.create(
        organization=org,
        account_id=account,
        kind="product",
        stripe_id="prod_fuzz",
        api=api,
        fingerprint="x",
    )
    drift = CatalogDrift.objects.create(
        organization=org, catalog_object=product, kind="archived", detail="archived"
    )
    _invitation, raw_invitation = invitation_create(
        organization=org,
        email="new@acme.test",
        role="publisher",
        invited_by=world.owner,
    )
    token = ingest_token_create(organization=org, actor=world.owner, name="edge")
    memberships = Membership.objects.filter(organization=org).order_by("pk")
    garbage = ["0", str(BIG), "9" * 30]
    ids = {
        "api_id": [api.pk, draft.pk],
        "tier_id": [free.pk, gold.pk],
        "meter_id": [tokens.pk],
        "application_id": [app.pk],
        "key_id": [issued.key.pk],
        "subscription_id": [subscription.pk],
        "invoice_id": [invoice.pk],
        "drift_id": [drift.pk],
        "membership_id": [m.pk for m in memberships],
        "invitation_id": [Invitation.objects.get(organization=org).pk],
        "token_id": [token.token.pk],
    }
    path_values = {
        name: [str(v) for v in values] + garbage for name, values in ids.items()
    }
    path_values |= {
        "org_slug": [org.slug, world.other_org.slug, "no-such-org"],
        "action": [*LifecycleAction.values, "explode"],
        "token": [raw_invitation, "x", "%00"],
        "plan_slug": ["starter", "growth", "trial", "x"],
        "key": ["x", "MQ:1tZ:abc"],
        "uidb36": ["1", "zz"],
    }
    clients = {role: Client() for role in ROLES}
    fuzz = FuzzWorld(
        world=world,
        clients=clients,
        path_values=path_values,
        ingest_token=token.raw,
        account=account,
    )
    fuzz.login_all()
    yield fuzz
    cache.clear()
