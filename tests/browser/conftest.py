"""Playwright driving Debian's chromium against a live apimon server.

Without /usr/bin/chromium the browser tests skip with the reason printed; CI sets
APIMON_REQUIRE_BROWSER=1 so that a missing browser fails instead of skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("APIMON_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("APIMON_REQUIRE_BROWSER") == "1":
            pytest.fail(f"APIMON_REQUIRE_BROWSER=1 but {CHROMIUM} is missing")
        pytest.skip(
            f"{CHROMIUM} not installed (apt-get install chromium) — browser tests skipped"
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test code's ORM
    # calls are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            instance = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            yield instance
            instance.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def csp_violations(page) -> list[str]:
    """Start collecting what the browser refuses under the Content-Security-Policy
    (chromium reports each refusal as a console error); the list fills as it goes."""
    violations: list[str] = []

    def on_console(message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            violations.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    return violations


@pytest.fixture
def page(browser, live_server):
    """A fresh browser tab on the live server. Every browser test also checks that
    no page it visited broke the Content-Security-Policy."""
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 860}
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    violations = csp_violations(page)
    yield page
    context.close()
    if violations:
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(violations))


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page, email: str, password: str) -> None:
    """Log in through the login page, as a user would."""
    page.goto("/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.locator("form button[type=submit]").last.click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def fill_billing_details(page) -> None:
    """The platform plan's billing and contact information, as an owner types it."""
    page.fill("input[name=name]", "Weather Works Ltd")
    page.fill("input[name=line1]", "1 Main Street")
    page.fill("input[name=city]", "Springfield")
    page.fill("input[name=postal_code]", "62701")
    page.select_option("select[name=country]", "US")
    page.fill("input[name=email]", "billing@weather.test")
    page.fill("input[name=phone]", "+1 217 555 0100")


def sign_up(page, email: str, password: str) -> None:
    """Fill the sign-up form on the current page (apimon's or a store's)."""
    page.fill("input[name=email]", email)
    page.fill("input[name=password1]", password)
    page.fill("input[name=password2]", password)
    page.get_by_role("button", name="Sign up").click()
