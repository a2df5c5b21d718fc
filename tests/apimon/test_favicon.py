"""Browsers ask for /favicon.ico on pages that name no icon (the admin's): it must
not be a 404, which Chromium logs as a console error on every such page."""

from __future__ import annotations

from django.contrib.staticfiles import finders


def test_favicon_ico_sends_browsers_to_apimons_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("/img/favicon.svg")
    assert finders.find("img/favicon.svg")
    # Cached like a static file, asked without a session.
    assert not response.cookies
