"""The emulator as its own process: `python -m stripe_emulator`, real HTTP, state that
survives a restart, and signed webhooks posted to a real receiver."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import stripe

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_server_process_test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[bytes, str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((body, self.headers["Stripe-Signature"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/billing/stripe/webhook/"
    server.shutdown()


class EmulatorProcess:
    def __init__(self, db: Path, webhook_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = db
        self.webhook_url = webhook_url
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stripe_emulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--db",
                str(self.db),
                "--webhook-url",
                self.webhook_url,
                "--webhook-secret",
                SECRET,
                "--time-scale",
                "3600",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/_emulator/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError("the emulator did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None

    def client(self) -> stripe.StripeClient:
        return stripe.StripeClient(
            "sk_test_emulator_platform",
            client_id="ca_emulator_apimon",
            base_addresses={"api": self.url, "connect": self.url, "files": self.url},
        )


@pytest.fixture
def emulator_process(tmp_path: Path, receiver: str) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(tmp_path / "stripe.sqlite3", receiver)
    process.start()
    yield process
    process.stop()


def wait_for(condition: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError("timed out")


def connect(process: EmulatorProcess) -> str:
    client = process.client()
    url = client.oauth.authorize_url(
        {"scope": "read_write", "state": "s", "redirect_uri": "http://testserver/cb"}
    )
    parts = urlsplit(url)
    response = httpx.post(
        f"{process.url}{parts.path}?{parts.query}",
        data={
            "choice": "new",
            "email": "p@example.com",
            "business_name": "Proc Inc",
            "country": "US",
        },
        follow_redirects=False,
    )
    assert response.status_code == 302
    code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    return client.oauth.token(
        {"grant_type": "authorization_code", "code": code}
    ).stripe_user_id


def test_it_serves_stripes_api_and_posts_signed_webhooks(
    emulator_process: EmulatorProcess,
) -> None:
    client = emulator_process.client()
    account = connect(emulator_process)
    options = {"stripe_account": account}

    customer = client.v1.customers.create({"email": "real-http@example.com"}, options)

    def delivered() -> list[stripe.Event]:
        events = [
            stripe.Webhook.construct_event(body, signature, SECRET)
            for body, signature in Receiver.received
        ]
        return [e for e in events if e.type == "customer.created"]

    event = wait_for(delivered)[0]
    assert event.account == account and event.data.object.id == customer.id
    page = httpx.get(f"{emulator_process.url}/").text
    assert "Stripe emulator" in page and account in page


def test_background_jobs_collect_auto_advance_invoices(
    emulator_process: EmulatorProcess,
) -> None:
    client = emulator_process.client()
    options = {"stripe_account": connect(emulator_process)}
    customer = client.v1.customers.create(
        {
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        },
        options,
    )
    invoice = client.v1.invoices.create(
        {"customer": customer.id, "auto_advance": True}, options
    )
    client.v1.invoice_items.create(
        {"customer": customer.id, "invoice": invoice.id, "amount": 1234}, options
    )

    # With --time-scale 3600 Stripe's one-hour wait before finalizing takes a second.
    paid = wait_for(
        lambda: (
            (found := client.v1.invoices.retrieve(invoice.id, None, options)).status
            == "paid"
            and found
        )
    )
    assert paid.amount_paid == 1234


def test_state_survives_a_restart(emulator_process: EmulatorProcess) -> None:
    client = emulator_process.client()
    account = connect(emulator_process)
    options = {"stripe_account": account}
    customer = client.v1.customers.create({"email": "kept@example.com"}, options)
    session = client.v1.checkout.sessions.create(
        {
            "mode": "setup",
            "currency": "usd",
            "customer": customer.id,
            "success_url": "http://testserver/ok",
        },
        options,
    )
    platform = client.v1.accounts.retrieve_current().id

    emulator_process.stop()
    emulator_process.start()

    client = emulator_process.client()
    assert (
        client.v1.customers.retrieve(customer.id, None, options).email
        == "kept@example.com"
    )
    assert client.v1.accounts.retrieve_current().id == platform
    assert session.url.startswith(emulator_process.url + "/c/pay/")
    page = httpx.get(session.url)
    assert page.status_code == 200 and "Save card" in page.text
    form = {
        "cardnumber": "4242 4242 4242 4242",
        "exp-date": "12 / 34",
        "cvc": "123",
        "name": "Jenny Rosen",
    }
    done = httpx.post(session.url.split("#")[0], data=form, follow_redirects=False)
    assert (
        done.status_code == 303 and done.headers["Location"] == "http://testserver/ok"
    )
    assert (
        client.v1.checkout.sessions.retrieve(session.id, None, options).status
        == "complete"
    )
