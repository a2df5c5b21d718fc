"""Shared fixtures: a tenant world with an owner, a publisher and a subscriber in one
organization ("acme") and an outsider who owns another organization ("globex")."""

from __future__ import annotations

import importlib
import io
import logging
import os
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings

from apimon.models import Membership, Organization, Role, User
from apimon.services import organization_create

pytest_plugins = ["tests.fixtures.stripe"]

# Property-based tests (hypothesis). "ci", the default, is derandomized: `make test`
# and CI try the same examples every run, so a failure reproduces; "explore" (set
# HYPOTHESIS_PROFILE=explore) draws fresh examples each run to search for new
# failures (with APIMON_FUZZ_EXAMPLES=100, say, for the fuzz tests of tests/fuzz).
# Examples may touch the database, so there is no per-example deadline.
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=_HEALTH,
    print_blob=True,
)
settings.register_profile("explore", deadline=None, suppress_health_check=_HEALTH)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

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


# Rows that data migrations seed. A transactional test (live server, browser) ends by
# flushing every table, so the transactional tests that follow seed them again.
REFERENCE_DATA = [
    ("apimon.migrations.0002_trial_plan", "seed_trial_plan"),
    ("apimon.migrations.0003_paid_platform_plans", "seed_paid_plans"),
]


@pytest.fixture(autouse=True)
def _reference_data_after_flushes(request):
    marker = request.node.get_closest_marker("django_db")
    transactional = (marker and marker.kwargs.get("transaction")) or bool(
        {"transactional_db", "live_server"} & set(request.fixturenames)
    )
    if transactional:
        from django.apps import apps

        request.getfixturevalue("transactional_db")
        for module, function in REFERENCE_DATA:
            getattr(importlib.import_module(module), function)(apps, None)


@pytest.fixture(autouse=True)
def _real_time():
    """Each test starts on real time: apimon.clock's copy of the demo clock says
    "no offset" without reading the database (a test that sets the demo clock
    writes both; `clock.forget()` makes the next read ask the database)."""
    from apimon import clock

    clock._offset, clock._read_at = 0, float("inf")
    yield
    clock._offset, clock._read_at = 0, float("inf")


@pytest.fixture(autouse=True)
def _celery_may_join_results():
    """Tasks run eagerly in the tests, and Celery marks "inside a task, joining a
    result would block" in one process-wide flag while an eager task runs. Two
    threads running eager tasks at once (the live server's or the gateway's thread
    beside the test's) can leave it set after both finish, failing a later test's
    `.delay().get()`. A worker in production never runs tasks eagerly; each test
    starts with the flag as a fresh process has it."""
    from celery._state import _set_task_join_will_block

    _set_task_join_will_block(False)


@pytest.fixture
def fresh_cache():
    """An empty Django cache before and after the test: allauth keeps its login rate
    limits and the TOTP codes already used there."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def client_for(client):
    """client_for(user) → a test client logged in as that user."""

    def login(user: User):
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        return client

    return login


@pytest.fixture
def log_lines():
    """What apimon's configured console handler writes (settings.LOGGING), as text."""
    handler = next(
        h
        for h in logging.getLogger().handlers
        if any(type(f).__name__ == "ContextFilter" for f in h.filters)
    )
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)
