"""A log line written while serving a store page names the request, the
organization and the user."""

from __future__ import annotations

import pytest
from werkzeug.test import Client

from tests.store.conftest import store_url

pytestmark = pytest.mark.django_db


def test_a_log_line_of_a_request_names_its_id_organization_and_user(
    world, shop, app, monetized, stripe_emulator, client_for, log_lines
):
    """Stripe answering 500 while a subscriber subscribes: the store logs a
    warning, which carries the request's id, organization and user."""
    Client(stripe_emulator.app).post("/_emulator/faults", data={"mode": "error"})
    client = client_for(world.subscriber)
    response = client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.gold.pk},
        headers={"X-Request-ID": "req-store-1"},
    )
    assert response.status_code == 200
    assert "The payment provider is not reachable" in response.content.decode()
    assert response["X-Request-ID"] == "req-store-1"
    warnings = [
        line for line in log_lines.getvalue().splitlines() if "level=WARNING" in line
    ]
    assert warnings, log_lines.getvalue()
    expected = f"request_id=req-store-1 org={shop.org.slug} user={world.subscriber.pk}"
    assert all(expected in line for line in warnings)
