"""Emulator configuration: command-line options with environment fallbacks.

Like apimon's settings (apimon/env.py), a variable may be given as a file:
`STRIPE_WEBHOOK_SECRET_FILE=/run/secrets/whsec` is read when `STRIPE_WEBHOOK_SECRET` is
unset, so the emulator and apimon can share one secret file. The emulator does not
import Django, so it has its own small reader.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from stripe._api_version import _ApiVersion

DEFAULT_WEBHOOK_URL = "http://127.0.0.1:8000/billing/stripe/webhook/"
DEFAULT_WEBHOOK_SECRET = "whsec_emulator_apimon"
DEFAULT_CLIENT_ID = "ca_emulator_apimon"
DEFAULT_DB = "var/stripe-emulator.sqlite3"
# The secret that closes the emulator: long, and usable in an API key and a header.
CONTROL_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{24,}")


class ConfigError(ValueError):
    """A variable the emulator cannot use; the message names it."""


def env(name: str, default: str | None = None) -> str | None:
    """``name`` from the environment, else the contents of the file ``name_FILE``
    names (stripped), else ``default``."""
    value = os.environ.get(name)
    if value is not None:
        return value
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"{name}_FILE={file_name!r} cannot be read: {exc.strerror}"
            ) from exc
    return default


def _bool(name: str, default: bool) -> bool:
    """The same words apimon's settings accept (apimon/env.py `env_bool`)."""
    value = env(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(
        f"{name}={value!r} is not a boolean (use one of 1/0, true/false, yes/no, on/off)"
    )


def _positive_number(name: str, default: float) -> float:
    value = env(name)
    if value is None:
        return default
    try:
        number = float(value.strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{name}={value!r} is not a positive number")
    return number


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
    # Set: the emulator is closed (docs/stripe-emulator.md "Closed mode"): its
    # dashboard and /_emulator/ controls need this secret, its API takes only the
    # platform key `sk_test_<secret>` (and OAuth access tokens), and the OAuth page
    # lists no other tenant's accounts. None: open, for development and tests.
    control_secret: str | None = None

    @property
    def closed(self) -> bool:
        return self.control_secret is not None

    @property
    def platform_key(self) -> str | None:
        """The one platform API key a closed emulator accepts."""
        return f"sk_test_{self.control_secret}" if self.control_secret else None

    @classmethod
    def from_env(cls, **overrides: object) -> EmulatorConfig:
        values: dict[str, object] = {
            "db_path": env("STRIPE_EMULATOR_DB", DEFAULT_DB),
            "webhook_url": env("STRIPE_EMULATOR_WEBHOOK_URL", DEFAULT_WEBHOOK_URL)
            or None,
            "webhook_secret": env("STRIPE_WEBHOOK_SECRET", DEFAULT_WEBHOOK_SECRET),
            "client_id": env("STRIPE_CONNECT_CLIENT_ID", DEFAULT_CLIENT_ID),
            "public_url": env("STRIPE_EMULATOR_PUBLIC_URL") or None,
            "control_secret": env("STRIPE_EMULATOR_CONTROL_SECRET") or None,
        }
        if overrides.get("time_scale") is None:
            values["time_scale"] = _positive_number("STRIPE_EMULATOR_TIME_SCALE", 1.0)
        values.update(
            {key: value for key, value in overrides.items() if value is not None}
        )
        config = cls(**values)  # type: ignore[arg-type]
        config.check(debug=_bool("DEBUG", True))
        return config

    def check(self, *, debug: bool) -> None:
        """Refuse what would leave a non-development emulator open: with DEBUG=0 (the
        variable apimon reads too) it needs its own control secret and a webhook
        signing secret that is not the public default every checkout knows."""
        secret = self.control_secret
        if secret is not None and not CONTROL_SECRET_PATTERN.fullmatch(secret):
            raise ConfigError(
                "STRIPE_EMULATOR_CONTROL_SECRET must be at least 24 characters of "
                "letters, digits, '-' and '_'"
            )
        if debug:
            return
        if secret is None:
            raise ConfigError(
                "STRIPE_EMULATOR_CONTROL_SECRET must be set when DEBUG is off (the "
                "emulator's controls, dashboard and API are closed with it)"
            )
        if self.webhook_secret in ("", DEFAULT_WEBHOOK_SECRET):
            raise ConfigError(
                "STRIPE_WEBHOOK_SECRET must be set when DEBUG is off, to a secret "
                f"other than the public default {DEFAULT_WEBHOOK_SECRET!r}"
            )
