"""Emulator configuration: command-line options with environment fallbacks."""

from __future__ import annotations

import os
from dataclasses import dataclass

from stripe._api_version import _ApiVersion

DEFAULT_WEBHOOK_URL = "http://127.0.0.1:8000/billing/stripe/webhook/"
DEFAULT_WEBHOOK_SECRET = "whsec_emulator_apimon"
DEFAULT_CLIENT_ID = "ca_emulator_apimon"
DEFAULT_DB = "var/stripe-emulator.sqlite3"

# The API version of the stripe-python release the project pins: the shapes the
# emulator answers with, and the `api_version` of its events.
API_VERSION = _ApiVersion.CURRENT


@dataclass
class EmulatorConfig:
    db_path: str = ":memory:"
    # Where events are posted; None keeps them in the event list only.
    webhook_url: str | None = DEFAULT_WEBHOOK_URL
    webhook_secret: str = DEFAULT_WEBHOOK_SECRET
    # The platform's Connect application (OAuth client_id).
    client_id: str = DEFAULT_CLIENT_ID
    platform_name: str = "apimon platform"
    # Divides the emulator's schedules (auto-finalize, retries, webhook backoff).
    time_scale: float = 1.0
    # Base URL put into hosted page links; None uses the address the request came to.
    public_url: str | None = None
    # Seconds a draft with auto_advance waits before it is finalized (Stripe: ~1 hour).
    auto_finalize_delay: int = 3600
    api_version: str = API_VERSION

    @classmethod
    def from_env(cls, **overrides: object) -> EmulatorConfig:
        env = os.environ
        values: dict[str, object] = {
            "db_path": env.get("STRIPE_EMULATOR_DB", DEFAULT_DB),
            "webhook_url": env.get("STRIPE_EMULATOR_WEBHOOK_URL", DEFAULT_WEBHOOK_URL)
            or None,
            "webhook_secret": env.get("STRIPE_WEBHOOK_SECRET", DEFAULT_WEBHOOK_SECRET),
            "client_id": env.get("STRIPE_CONNECT_CLIENT_ID", DEFAULT_CLIENT_ID),
            "time_scale": float(env.get("STRIPE_EMULATOR_TIME_SCALE", "1")),
            "public_url": env.get("STRIPE_EMULATOR_PUBLIC_URL") or None,
        }
        values.update(
            {key: value for key, value in overrides.items() if value is not None}
        )
        return cls(**values)  # type: ignore[arg-type]
