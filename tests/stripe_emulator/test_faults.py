"""Injected faults (`/_emulator/faults`): off by default; 500s and held requests on
the paths asked for, for a number of requests or until turned off."""

from __future__ import annotations

import threading
import time

import pytest
import stripe
from werkzeug.test import Client

from apimon import stripe_client as sc


@pytest.fixture
def control(stripe_emulator):
    return Client(stripe_emulator.app)


def test_no_fault_unless_asked(control, stripe_client):
    assert control.get("/_emulator/faults").json["mode"] == "off"
    assert stripe_client.v1.customers.create({"email": "a@example.com"}).id


def test_error_mode_answers_stripe_500s_for_count_requests_then_recovers(
    control, stripe_emulator, settings
):
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    sc.reset_for_tests()
    client = sc.raw_client()
    answer = control.post("/_emulator/faults", data={"mode": "error", "count": "2"})
    assert answer.json["mode"] == "error"
    for _ in range(2):
        with pytest.raises(stripe.APIError) as refused:
            client.v1.customers.create({"email": "a@example.com"})
        assert refused.value.http_status == 500
    # Nothing was made by the refused requests; the third is served.
    assert client.v1.customers.list().data == []
    assert client.v1.customers.create({"email": "a@example.com"}).id
    state = control.get("/_emulator/faults").json
    assert (state["mode"], state["hits"]) == ("off", 2)


def test_paths_choose_which_requests_fail(control, stripe_client, settings):
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    sc.reset_for_tests()
    client = sc.raw_client()
    control.post("/_emulator/faults", data={"mode": "error", "paths": "/v1/invoices"})
    assert client.v1.customers.create({"email": "a@example.com"}).id
    with pytest.raises(stripe.APIError):
        client.v1.invoices.list()
    # The control endpoints themselves are never faulted.
    assert control.post("/_emulator/faults", data={"mode": "off"}).status_code == 200
    assert client.v1.invoices.list().data == []


def test_timeout_mode_holds_the_request_then_does_it(control, stripe_emulator):
    control.post(
        "/_emulator/faults", data={"mode": "timeout", "delay": "0.5", "count": "1"}
    )
    held = Client(stripe_emulator.app)
    answers = {}

    def slow():
        answers["held"] = held.post(
            "/v1/customers",
            data={"email": "held@example.com"},
            headers={"Authorization": "Bearer sk_test_x"},
        )

    started = time.monotonic()
    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.1)
    # Another request is served while the first one is held.
    other = control.get("/v1/customers", headers={"Authorization": "Bearer sk_test_x"})
    assert other.status_code == 200 and time.monotonic() - started < 0.45
    thread.join(5)
    assert time.monotonic() - started >= 0.5
    assert answers["held"].status_code == 200  # carried out after the delay


@pytest.mark.parametrize(
    "values",
    [
        {"mode": "explode"},
        {"mode": "timeout"},
        {"mode": "error", "count": "-1"},
        {"mode": "error", "count": "x"},
        {"mode": "timeout", "delay": "9999"},
        {"mode": "error", "paths": "v1"},
    ],
)
def test_a_bad_plan_is_refused_with_a_reason(control, values):
    answer = control.post("/_emulator/faults", data=values)
    assert answer.status_code == 400 and answer.json["error"]
    assert control.get("/_emulator/faults").json["mode"] == "off"


def test_a_reset_turns_the_faults_off(control, stripe_emulator):
    control.post("/_emulator/faults", data={"mode": "error"})
    stripe_emulator.reset()
    assert control.get("/_emulator/faults").json["mode"] == "off"
