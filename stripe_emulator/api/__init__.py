"""The emulated Stripe API: importing this package registers every route."""

from stripe_emulator.api import (  # noqa: F401 - imported for their routes
    accounts,
    catalog,
    checkout,
    customers,
    events,
    invoices,
    payments,
)
from stripe_emulator.api.router import ROUTES

__all__ = ["ROUTES"]
