"""An offline Stripe for apimon's demo, tests and CI (see docs/stripe-emulator.md).

Run it as a service with `python -m stripe_emulator`, or in-process from tests with
`stripe_emulator.inprocess.InProcessHTTPClient`. It does not import Django.
"""

from stripe_emulator.config import API_VERSION, EmulatorConfig
from stripe_emulator.emulator import Emulator

__all__ = ["API_VERSION", "Emulator", "EmulatorConfig"]
