"""Structured logs: the request id (the caller's X-Request-ID when sane, else a new
one, returned in the response), the organization and the user on every log line
written for a request (tests/store/test_request_logs.py, tests/gateway/
test_request_id.py show them on real log lines)."""

from __future__ import annotations

import logging
import re

import pytest


@pytest.mark.django_db
def test_every_page_answers_with_a_request_id(client):
    made = client.get("/")["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert client.get("/", headers={"X-Request-ID": "lb-42.a:b"})["X-Request-ID"] == (
        "lb-42.a:b"
    )
    for bad in ("two words", "x" * 200, "<script>"):
        answered = client.get("/", headers={"X-Request-ID": bad})["X-Request-ID"]
        assert answered != bad and re.fullmatch(r"[0-9a-f]{32}", answered)


def test_outside_a_request_the_fields_say_so(log_lines):
    logging.getLogger("apimon.test").warning("between requests")
    (line,) = log_lines.getvalue().splitlines()
    assert "level=WARNING logger=apimon.test request_id=- org=- user=-" in line
    assert line.endswith("between requests")
