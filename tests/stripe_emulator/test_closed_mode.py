"""A closed emulator (STRIPE_EMULATOR_CONTROL_SECRET set; required with DEBUG=0):
its dashboard and /_emulator/ controls need the secret, its API takes only the
platform key made of it, and its OAuth page lists no one's accounts. The pages a
subscriber's or owner's browser reaches through ids apimon hands out still work."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import pytest
from werkzeug.test import Client

from stripe_emulator.config import EmulatorConfig
from stripe_emulator.emulator import Emulator
from stripe_emulator.testing import authorize, code_from, oauth_connect

SECRET = "operator-chosen-" + "s3cr3t" * 4
BASE = "http://127.0.0.1:12111"


@pytest.fixture
def emulator():
    emulator = Emulator(
        EmulatorConfig(control_secret=SECRET, webhook_url=None),
        deliver=lambda *args, **kwargs: None,
    )
    yield emulator
    emulator.close()


@pytest.fixture
def web(emulator) -> Client:
    return Client(emulator.app)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def basic(password: str, user: str = "operator") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_emulator/"),
        ("GET", "/_emulator/deliveries"),
        ("POST", "/_emulator/advance"),
        ("POST", "/_emulator/run_due"),
        ("POST", "/_emulator/deliver"),
        ("POST", "/_emulator/reset"),
    ],
)
def test_every_control_needs_the_secret(web, emulator, method, path):
    before = emulator.now()
    for headers in ({}, bearer("wrong"), bearer(""), basic("wrong")):
        response = web.open(
            path, method=method, headers=headers, data={"seconds": 86400}
        )
        assert response.status_code == 401, headers
        assert response.json["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert emulator.now() - before < 5  # "advance" moved nothing
    allowed = web.open(path, method=method, headers=bearer(SECRET), data={"seconds": 1})
    assert allowed.status_code == 200


def test_reset_without_the_secret_keeps_every_account(web, emulator):
    oauth_connect(emulator, email="a@tenant.test")
    accounts = len(emulator.store.list("account", account=emulator.platform_id))
    assert web.post("/_emulator/reset").status_code == 401
    assert len(emulator.store.list("account", account=emulator.platform_id)) == accounts


def test_the_dashboard_takes_the_secret_as_a_browsers_password(web):
    refused = web.get("/")
    assert refused.status_code == 401
    assert "Basic" in refused.headers["WWW-Authenticate"]
    assert "Accounts" not in refused.get_data(as_text=True)
    page = web.get("/", headers=basic(SECRET))
    assert page.status_code == 200 and "Accounts" in page.get_data(as_text=True)


def test_the_api_takes_only_the_platform_key_made_of_the_secret(web):
    for key in ("sk_test_emulator_platform", "sk_test_anything", "rk_test_x"):
        response = web.get("/v1/customers", headers=bearer(key))
        assert response.status_code == 401, key
        assert response.json["error"]["message"].startswith("Invalid API Key")
    assert (
        web.get("/v1/customers", headers=bearer(f"sk_test_{SECRET}")).status_code == 200
    )


def test_an_oauth_access_token_still_acts_as_its_account(web, emulator):
    code = oauth_connect(emulator, email="a@tenant.test")
    token = web.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_secret": f"sk_test_{SECRET}",
        },
    )
    assert token.status_code == 200
    access = token.json["access_token"]
    assert (
        web.get("/v1/account", headers=bearer(access)).json["id"]
        == (token.json["stripe_user_id"])
    )
    # Exchanging a code needs the platform key too.
    refused = web.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_secret": "sk_test_x",
        },
    )
    assert refused.status_code == 401


def authorize_url(emulator) -> str:
    query = urlencode(
        {
            "response_type": "code",
            "client_id": emulator.config.client_id,
            "scope": "read_write",
            "redirect_uri": "http://apimon.test/cb/",
            "state": "s",
        }
    )
    return f"/oauth/authorize?{query}"


def tenant_accounts(emulator) -> list[str]:
    return [
        a["id"]
        for a in emulator.store.list("account", account=emulator.platform_id)
        if not a.get("_platform")
    ]


def test_the_oauth_page_lists_no_ones_accounts(web, emulator):
    oauth_connect(emulator, email="owner@other-tenant.test", business_name="Other Co")
    (account,) = tenant_accounts(emulator)
    html = web.get(authorize_url(emulator)).get_data(as_text=True)
    for detail in ("Other Co", "owner@other-tenant.test", account):
        assert detail not in html
    assert "Account id" in html


def test_an_existing_account_is_reached_by_its_id(web, emulator):
    oauth_connect(emulator, email="me@tenant.test")
    (account,) = tenant_accounts(emulator)
    back = authorize(emulator, BASE + authorize_url(emulator), existing_account=account)
    assert code_from(back).startswith("ac_")
    wrong = web.post(
        authorize_url(emulator),
        data={"choice": "existing", "account_id": "acct_1NotAnAccount00"},
    )
    assert wrong.status_code == 200
    assert "No account has this id." in wrong.get_data(as_text=True)


def test_an_open_emulator_keeps_its_development_behaviour():
    emulator = Emulator(EmulatorConfig(webhook_url=None), deliver=lambda *a, **k: None)
    try:
        web = Client(emulator.app)
        assert web.get("/_emulator/").status_code == 200
        assert web.get("/").status_code == 200
        customers = web.get("/v1/customers", headers=bearer("sk_test_anything"))
        assert customers.status_code == 200
    finally:
        emulator.close()
