"""Drive the emulator's pages the way a person's browser would, for tests (and for
apimon's `seed_demo`, which types the demo's cards into Checkout this way).

These submit the same forms a user fills in (OAuth authorize, onboarding, Checkout,
hosted invoice), so tests exercise the real flows without a browser.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

from werkzeug.test import Client

from stripe_emulator.emulator import Emulator

DEFAULT_BASE = "http://127.0.0.1:12111"


class PageError(AssertionError):
    """A page answered differently from what a successful flow would do."""


def _client(emulator: Emulator) -> Client:
    return Client(emulator.app)


def _split(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}" if parts.netloc else DEFAULT_BASE
    return base, parts.path, parts.query


def authorize(
    emulator: Emulator,
    authorize_url: str,
    *,
    email: str = "owner@example.com",
    business_name: str = "Example Publisher",
    country: str = "US",
    existing_account: str | None = None,
) -> str:
    """Submit the Connect OAuth page ("Authorize access to this account") and return the
    URL the browser is sent back to (redirect_uri?scope=…&code=ac_…&state=…)."""
    base, path, query = _split(authorize_url)
    form = {
        "choice": existing_account or "new",
        "account_id": existing_account or "",
        "email": email,
        "business_name": business_name,
        "country": country,
    }
    if existing_account and emulator.config.closed:
        form["choice"] = "existing"  # a closed page takes the id, lists nothing
    response = _client(emulator).post(f"{path}?{query}", base_url=base, data=form)
    if response.status_code != 302:
        raise PageError(
            f"authorize page answered {response.status_code}: "
            f"{response.get_data(as_text=True)[:500]}"
        )
    return response.headers["Location"]


def code_from(redirect_url: str) -> str:
    query = parse_qs(urlsplit(redirect_url).query)
    if "code" not in query:
        raise PageError(f"no code in {redirect_url}")
    return query["code"][0]


def oauth_connect(
    emulator: Emulator,
    *,
    client_id: str | None = None,
    redirect_uri: str = "http://testserver/stripe/callback/",
    state: str = "test-state",
    **account: str,
) -> str:
    """Authorize the platform on a new (or `existing_account=`) account; the code."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id or emulator.config.client_id,
            "scope": "read_write",
            "redirect_uri": redirect_uri,
            "state": state,
        }
    )
    return code_from(
        authorize(emulator, f"{emulator.base_url()}/oauth/authorize?{query}", **account)
    )


def complete_onboarding(
    emulator: Emulator,
    account_link_url: str,
    *,
    business_name: str = "Example Publisher",
) -> str:
    """Submit an account link's onboarding form; the return_url it redirects to."""
    base, path, _ = _split(account_link_url)
    response = _client(emulator).post(
        path,
        base_url=base,
        data={
            "business_name": business_name,
            "email": "owner@example.com",
            "url": "https://example.com",
            "product_description": "APIs",
        },
    )
    if response.status_code != 302:
        raise PageError(f"onboarding page answered {response.status_code}")
    return response.headers["Location"]


def submit_card(
    emulator: Emulator,
    page_url: str,
    card_number: str = "4242 4242 4242 4242",
    *,
    exp: str = "12 / 34",
    cvc: str = "123",
    name: str = "Jenny Rosen",
    email: str = "",
) -> tuple[int, str]:
    """Type a card into a Checkout or hosted invoice page and submit it.

    Returns (status, Location or page text): 303 and the success URL when it worked,
    402 and the page (with the decline message) when it did not."""
    base, path, _ = _split(page_url)
    form = {
        "cardnumber": card_number,
        "exp-date": exp,
        "cvc": cvc,
        "name": name,
        "country": "US",
    }
    if email:
        form["email"] = email
    response = _client(emulator).post(path, base_url=base, data=form)
    if response.status_code in (302, 303):
        return response.status_code, response.headers["Location"]
    return response.status_code, response.get_data(as_text=True)


def get_page(emulator: Emulator, url: str) -> tuple[int, str, str]:
    """GET a page: (status, content type, body text)."""
    base, path, query = _split(url)
    response = _client(emulator).get(
        f"{path}?{query}" if query else path, base_url=base
    )
    return (
        response.status_code,
        response.content_type or "",
        response.get_data(as_text=True),
    )


def get_bytes(emulator: Emulator, url: str) -> tuple[int, str, bytes]:
    base, path, query = _split(url)
    response = _client(emulator).get(
        f"{path}?{query}" if query else path, base_url=base
    )
    return response.status_code, response.content_type or "", response.get_data()
