"""Demo data for `make run` (`manage.py seed_demo`). Every step is idempotent.

Part of the composition root (docs/architecture.md): it seeds every app, so it may
import each of them; nothing in the apps imports it."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from apimon.models import Membership, Organization, Role, User
from apimon.services import trial_plan
from publisher.demo import seed_catalog
from store.demo import seed_store

DEMO_PASSWORD = "apimon-demo-2026"
DEMO_ORG_SLUG = "acme"
DEMO_USERS = [
    ("operator", "admin@apimon.localhost"),
    (Role.OWNER, "owner@acme.localhost"),
    (Role.PUBLISHER, "publisher@acme.localhost"),
    (Role.SUBSCRIBER, "subscriber@acme.localhost"),
]


@dataclass
class DemoResult:
    organization: Organization
    users: dict[str, User] = field(default_factory=dict)
    logins: list[tuple[str, str]] = field(default_factory=list)
    tiers: list = field(default_factory=list)
    apis: list = field(default_factory=list)
    subscription: object = None
    api_key: str = ""  # the demo key, only on the run that made it


def _user(email: str, *, staff: bool = False) -> User:
    user = User.objects.filter(email=email).first()
    if user is None:
        if staff:
            user = User.objects.create_superuser(email=email, password=DEMO_PASSWORD)
        else:
            user = User.objects.create_user(email=email, password=DEMO_PASSWORD)
        _verify_email(user)
    return user


def _verify_email(user: User) -> None:
    from allauth.account.models import EmailAddress

    EmailAddress.objects.update_or_create(
        user=user, email=user.email, defaults={"verified": True, "primary": True}
    )


@transaction.atomic
def seed() -> DemoResult:
    org, _ = Organization.objects.get_or_create(
        slug=DEMO_ORG_SLUG, defaults={"name": "Acme Weather", "plan": trial_plan()}
    )
    result = DemoResult(organization=org)
    for role, email in DEMO_USERS:
        user = _user(email, staff=(role == "operator"))
        result.users[str(role)] = user
        result.logins.append((str(role), email))
        if role != "operator":
            Membership.objects.get_or_create(
                user=user, organization=org, defaults={"role": role}
            )
    result.tiers, result.apis = seed_catalog(org, actor=result.users[Role.PUBLISHER])
    result.subscription, result.api_key = seed_store(
        org, subscriber=result.users[Role.SUBSCRIBER]
    )
    # Later parts of apimon (subscriptions, usage) add their steps here.
    return result
