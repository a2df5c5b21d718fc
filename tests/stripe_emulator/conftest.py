from __future__ import annotations

from typing import Any

import pytest

from apimon import stripe_client as sc
from tests.fixtures.stripe import (  # noqa: F401 - fixtures
    WebhookCapture,
    stripe_account,
    stripe_client,
    stripe_emulator,
    stripe_webhook_capture,
    stripe_webhooks,
)


@pytest.fixture(autouse=True)
def _fresh_emulator(stripe_emulator: Any) -> None:  # noqa: F811
    """Every emulator test starts from an empty emulator."""


@pytest.fixture
def opts(stripe_account: str) -> dict[str, Any]:  # noqa: F811
    """Request options acting on the connected account."""
    return sc.request_options(account=stripe_account)
