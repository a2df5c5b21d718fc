"""Injected faults, for testing a Stripe client against an unreliable Stripe.

Off by default. `POST /_emulator/faults` (a control endpoint, routed like the others)
sets one plan for the requests whose path starts with one of `paths` (default the
API, `/v1/`):

- `mode=error`: answer 500 with Stripe's `api_error` body, without doing anything;
- `mode=timeout`: hold the request `delay` seconds, then do it and answer as usual,
  the way a request that timed out on the client may still have been carried out
  (so a client that retried must rely on its idempotency key);
- `mode=off`: normal service.

`count` limits the plan to that many requests (0: until it is turned off). Requests
are held outside the store's lock, so other requests are served meanwhile. A Stripe
that is down altogether is the process being stopped.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

MODES = ("off", "error", "timeout")
MAX_DELAY = 600.0


class FaultError(ValueError):
    """A plan the control endpoint refuses; the message says why."""


@dataclass
class FaultPlan:
    mode: str = "off"
    paths: tuple[str, ...] = ("/v1/",)
    count: int = 0
    delay: float = 0.0
    hits: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set(self, values: dict[str, str]) -> None:
        mode = values.get("mode", "off")
        if mode not in MODES:
            raise FaultError(f"mode must be one of {', '.join(MODES)}")
        paths = tuple(
            p.strip() for p in values.get("paths", "/v1/").split(",") if p.strip()
        )
        if not paths or not all(p.startswith("/") for p in paths):
            raise FaultError("paths must be path prefixes starting with /")
        try:
            count = int(values.get("count", "0"))
            delay = float(values.get("delay", "0"))
        except ValueError:
            raise FaultError("count must be an integer and delay a number") from None
        if count < 0 or not 0 <= delay <= MAX_DELAY:
            raise FaultError(f"count must be ≥ 0 and delay 0 to {MAX_DELAY:g} s")
        if mode == "timeout" and delay <= 0:
            raise FaultError("mode=timeout needs a delay in seconds")
        with self._lock:
            self.mode, self.paths, self.count, self.delay = mode, paths, count, delay
            self.hits = 0

    def take(self, path: str) -> str | None:
        """The fault to apply to a request for `path` ("error", "timeout") or None."""
        if self.mode == "off" or path.startswith("/_emulator/"):
            return None
        if not path.startswith(self.paths):
            return None
        with self._lock:
            if self.mode == "off":
                return None
            self.hits += 1
            mode = self.mode
            if self.count and self.hits >= self.count:
                self.mode = "off"
            return mode

    def hold(self) -> None:
        time.sleep(self.delay)

    def state(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "paths": list(self.paths),
            "count": self.count,
            "delay": self.delay,
            "hits": self.hits,
        }
