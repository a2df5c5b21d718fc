"""The gateway keeps the caller's X-Request-ID (or makes one), passes it on to the
API's backend, returns it, and its log lines name it with the organization."""

from __future__ import annotations

import re


def test_the_gateway_passes_the_request_id_to_the_backend_and_back(metering, gateway):
    answer = gateway.get(
        "/gateway/acme/weather/v1/echo",
        key=metering.key,
        headers={"X-Request-ID": "edge-7"},
    )
    assert answer.headers["x-request-id"] == "edge-7"
    sent = {name.lower(): value for name, value in answer.json()["headers"]}
    assert sent["x-request-id"] == "edge-7"

    made = gateway.get("/gateway/acme/weather/v1/echo", key=metering.key)
    rid = made.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    sent = {name.lower(): value for name, value in made.json()["headers"]}
    assert sent["x-request-id"] == rid
    # Refusals carry one too.
    assert gateway.get("/gateway/acme/weather/v1/echo").headers["x-request-id"]


def test_a_gateway_log_line_names_the_request_and_the_organization(
    metering, gateway, unreachable_url, log_lines
):
    metering.api.backend_url = unreachable_url
    metering.api.save()
    answer = gateway.get(
        "/gateway/acme/weather/v1/x",
        key=metering.key,
        headers={"X-Request-ID": "edge-8"},
    )
    assert answer.status_code == 502
    (line,) = [x for x in log_lines.getvalue().splitlines() if "unreachable" in x]
    assert "request_id=edge-8 org=acme user=-" in line
