"""Shared fixtures: a tenant world with an owner, a publisher and a subscriber in one
organization ("acme") and an outsider who owns another organization ("globex")."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from apimon.models import Membership, Organization, Role, User
from apimon.services import organization_create

pytest_plugins = ["tests.fixtures.stripe"]

PASSWORD = "correct-horse-battery-staple"


def make_user(email: str, password: str = PASSWORD) -> User:
    return User.objects.create_user(email=email, password=password)


@dataclass
class World:
    org: Organization
    owner: User
    publisher: User
    subscriber: User
    other_org: Organization
    outsider: User


@pytest.fixture
def world(db) -> World:
    owner = make_user("owner@acme.test")
    org = organization_create(user=owner, name="Acme")
    publisher = make_user("publisher@acme.test")
    Membership.objects.create(user=publisher, organization=org, role=Role.PUBLISHER)
    subscriber = make_user("subscriber@acme.test")
    Membership.objects.create(user=subscriber, organization=org, role=Role.SUBSCRIBER)
    outsider = make_user("owner@globex.test")
    other_org = organization_create(user=outsider, name="Globex")
    return World(org, owner, publisher, subscriber, other_org, outsider)


@pytest.fixture
def client_for(client):
    """client_for(user) → a test client logged in as that user."""

    def login(user: User):
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        return client

    return login
