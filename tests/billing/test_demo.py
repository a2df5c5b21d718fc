"""Where `seed_demo` writes the demo's Stripe history (`billing.demo`): as `make run`
runs it, before the emulator process starts, into the emulator's state file, which
the emulator process then serves; never into a running emulator, one that holds
other objects, or a file left half-written by an interrupted seed."""

from __future__ import annotations

import dataclasses
import socket
import time

import pytest

from apimon import demo
from apimon import stripe_client as sc
from apimon.models import Organization
from billing.models import Invoice, StripeConnection
from store import demo as store_demo
from store.models import Subscription
from stripe_emulator import testing
from stripe_emulator.config import EmulatorConfig
from stripe_emulator.emulator import Emulator

pytestmark = pytest.mark.django_db


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def make_run(settings, tmp_path, monkeypatch):
    """apimon configured as `make run` configures it: the emulator over HTTP (here
    an address where nothing listens yet) with its state file."""
    state = tmp_path / "stripe-emulator.sqlite3"
    monkeypatch.setenv("STRIPE_EMULATOR_DB", str(state))
    settings.STRIPE_EMULATOR_IN_PROCESS = False
    settings.STRIPE_EMULATOR_URL = f"http://127.0.0.1:{free_port()}"
    sc.reset_for_tests()
    yield state
    sc.reset_for_tests()


def open_state(path) -> Emulator:
    return Emulator(EmulatorConfig(db_path=str(path), webhook_url=None))


def test_the_history_goes_into_the_state_file_the_emulator_then_serves(
    make_run, settings
):
    result = demo.seed()
    assert result.history == "" and result.invoices >= 20
    assert not make_run.with_name(make_run.name + ".seeding").exists()
    emulator = open_state(make_run)  # what `python -m stripe_emulator` opens
    try:
        for invoice in Invoice.objects.all():
            stored = emulator.store.get(invoice.stripe_invoice_id)
            assert stored is not None and stored["status"] == invoice.status
        sample = Invoice.objects.filter(kind="renewal").last()
        assert sample.hosted_invoice_url.startswith(settings.STRIPE_EMULATOR_URL)
        status, _type, page = testing.get_page(emulator, sample.hosted_invoice_url)
        assert status == 200 and sample.subscription.subscriber.email in page
        # Its clock went through the story, from the connected accounts made 60
        # days ago, and ended at the present.
        assert abs(emulator.now() - time.time()) < 60
        connection = StripeConnection.objects.get(organization__slug="acme")
        account = emulator.store.get(connection.account_id)
        assert abs(time.time() - account["created"] - demo.HISTORY.total_seconds()) < (
            2 * 3600
        )
    finally:
        emulator.close()


def test_an_emulator_that_holds_objects_gets_no_history_and_is_left_alone(make_run):
    emulator = open_state(make_run)
    testing.oauth_connect(emulator)  # someone used it before
    emulator.close()
    before = make_run.read_bytes()
    result = demo.seed()
    assert "already holds objects" in result.history
    assert make_run.read_bytes() == before
    # The rest of the demo is there: logins, catalogs, free subscriptions.
    assert Organization.objects.filter(slug__in=["acme", "globex"]).count() == 2
    subs = Subscription.objects.all()
    assert subs.exists()
    assert {s.tier.billing_plan for s in subs} == {"FREE"}
    assert result.api_key and not Invoice.objects.exists()


def test_a_running_emulator_gets_no_history(make_run, settings):
    emulator = Emulator(EmulatorConfig(db_path=":memory:", webhook_url=None))
    url, server = emulator.serve_in_thread()
    settings.STRIPE_EMULATOR_URL = url
    try:
        result = demo.seed()
    finally:
        server.shutdown()
        emulator.close()
    assert "is running" in result.history
    assert not make_run.exists()
    assert not Invoice.objects.exists()


def test_an_interrupted_seed_leaves_neither_rows_nor_stripe_objects(
    make_run, monkeypatch
):
    # The last subscriber names a tier that does not exist: the seed stops there,
    # with most of the history written.
    broken = dict(store_demo.SUBSCRIBERS)
    last = broken["globex"][-1]
    app = last.applications[0]
    bad = dataclasses.replace(app.subscriptions[0], tier="No such tier")
    broken["globex"] = (
        *broken["globex"][:-1],
        dataclasses.replace(
            last, applications=(dataclasses.replace(app, subscriptions=(bad,)),)
        ),
    )
    monkeypatch.setattr(store_demo, "SUBSCRIBERS", broken)
    with pytest.raises(Exception, match="Tier matching query does not exist"):
        demo.seed()
    assert not Organization.objects.filter(slug__in=["acme", "globex"]).exists()
    assert not make_run.exists()
    assert list(make_run.parent.iterdir()) == []
    # And the next run writes the whole history.
    monkeypatch.undo()
    monkeypatch.setenv("STRIPE_EMULATOR_DB", str(make_run))
    assert demo.seed().history == ""
    assert make_run.exists()
