"""The emulator inside the test process: a stripe-python HTTP client that hands each
request straight to the emulator's WSGI app, so tests need no server and no network.

    client = stripe.StripeClient(
        "sk_test_x",
        http_client=InProcessHTTPClient(),
        base_addresses={"api": URL, "connect": URL, "files": URL},
    )

The URL's host does not matter for dispatch, but it is the address the emulator puts in
the links it returns (Checkout, hosted invoices), so pass the emulator's public URL.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from stripe import HTTPClient
from werkzeug.test import Client

from stripe_emulator.config import EmulatorConfig
from stripe_emulator.emulator import Emulator

_lock = threading.Lock()
_emulator: Emulator | None = None


def get_inprocess_emulator() -> Emulator:
    """The process-wide in-process emulator (in-memory SQLite, webhooks held until
    `deliver_pending()` with a sink set by `set_webhook_sink`)."""
    global _emulator
    with _lock:
        if _emulator is None:
            _emulator = Emulator(
                EmulatorConfig(db_path=":memory:"), deliver=_no_receiver
            )
        return _emulator


def configure_inprocess_emulator(**changes: Any) -> Emulator:
    """Set EmulatorConfig fields (client_id, webhook_url, …) in place."""
    emulator = get_inprocess_emulator()
    for name, value in changes.items():
        if not hasattr(emulator.config, name):
            raise TypeError(f"EmulatorConfig has no field {name!r}")
        setattr(emulator.config, name, value)
    return emulator


def reset_inprocess_emulator() -> Emulator:
    """Forget all state (accounts, objects, events, time); keeps the configuration.
    Webhooks go nowhere again until a sink is set."""
    emulator = get_inprocess_emulator()
    emulator.reset()
    emulator.set_webhook_sink(_no_receiver)
    return emulator


def _no_receiver(url: str, body: bytes, headers: dict[str, str]) -> int:
    # Nothing listens in-process unless a test routes webhooks somewhere: the delivery
    # fails and is retried with backoff, exactly like an unreachable endpoint.
    return 0


class InProcessHTTPClient(HTTPClient):
    name = "stripe_emulator.inprocess"

    def __init__(self, emulator: Emulator | None = None) -> None:
        super().__init__()
        self._emulator = emulator

    @property
    def emulator(self) -> Emulator:
        return self._emulator or get_inprocess_emulator()

    def _dispatch(
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any
    ) -> tuple[bytes, int, dict[str, str]]:
        parts = urlsplit(url)
        if isinstance(post_data, str):
            post_data = post_data.encode()
        response = Client(self.emulator.app).open(
            parts.path,
            base_url=f"{parts.scheme}://{parts.netloc}",
            method=method.upper(),
            query_string=parts.query,
            headers=dict(headers or {}),
            data=post_data,
        )
        body = response.get_data()
        response_headers = {
            key.lower(): value for key, value in response.headers.items()
        }
        return body, response.status_code, response_headers

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        body, status, response_headers = self._dispatch(method, url, headers, post_data)
        return body.decode("utf-8"), status, response_headers

    def request_stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[Any, int, Mapping[str, str]]:
        body, status, response_headers = self._dispatch(method, url, headers, post_data)
        return io.BytesIO(body), status, response_headers

    async def request_async(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[bytes, int, Mapping[str, str]]:
        body, status, response_headers = self._dispatch(method, url, headers, post_data)
        return body, status, response_headers

    def close(self) -> None:
        pass

    async def close_async(self) -> None:
        pass
