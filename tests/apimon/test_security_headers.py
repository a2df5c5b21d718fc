"""Browser-facing headers: a Content-Security-Policy that allows no inline script or
style, and a Permissions-Policy that denies the devices and sensors apimon never
uses. tests/browser checks the pages in chromium with the policy enforced."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import ROOT

# Pages, not emails: mail clients read those, under no policy of apimon's.
TEMPLATES = sorted(
    path
    for path in (ROOT / "templates").rglob("*.html")
    if "emails" not in path.relative_to(ROOT).parts
)


def policy(response) -> dict[str, list[str]]:
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/t/acme/store/"])
def test_pages_carry_a_strict_content_security_policy(world, client, path):
    response = client.get(path)

    csp = policy(response)
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["default-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]


def test_forms_may_lead_to_stripes_pages_only(client, settings):
    csp = policy(client.get("/"))
    assert csp["form-action"] == ["'self'", settings.STRIPE_EMULATOR_URL]


@pytest.mark.django_db
def test_the_permissions_policy_denies_devices_and_payment(client):
    header = client.get("/")["Permissions-Policy"]
    for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
        assert f"{feature}=()" in header
    assert "clipboard-write" not in header  # the key page copies the new key


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_template_has_inline_script_handlers_or_styles(template: Path):
    """The policy would block them: every script is a static file, every style a
    class."""
    html = re.sub(r"\{#.*?#\}", "", template.read_text(), flags=re.S)  # comments
    inline_scripts = [
        tag
        for tag in re.findall(r"<script\b[^>]*>", html)
        if "src=" not in tag and 'type="application/json"' not in tag
    ]
    assert inline_scripts == []
    assert re.findall(r"\son[a-z]+\s*=", html) == []
    assert re.findall(r"\sstyle\s*=", html) == []
    assert "<style" not in html
