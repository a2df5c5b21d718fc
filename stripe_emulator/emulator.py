"""The emulator: state, clock, webhook delivery and the automatic jobs Stripe runs."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from stripe_emulator import objects
from stripe_emulator.clock import Clock
from stripe_emulator.config import EmulatorConfig
from stripe_emulator.faults import FaultPlan
from stripe_emulator.ids import new_id, random_token
from stripe_emulator.store import Store
from stripe_emulator.webhooks import (
    Deliver,
    DeliveryResult,
    deliver_due,
    emit,
    http_deliver,
)

log = logging.getLogger("stripe_emulator")

DEFAULT_BASE_URL = "http://127.0.0.1:12111"


@dataclass
class Ctx:
    """Who a piece of work acts as: the account, and the request that caused it."""

    emulator: Emulator
    account: str
    base_url: str
    request_id: str | None = None
    idempotency_key: str | None = None
    # The masked API key of the request, for error messages that quote it.
    key_hint: str = ""

    @property
    def store(self) -> Store:
        return self.emulator.store

    @property
    def platform_id(self) -> str:
        return self.emulator.platform_id

    @property
    def is_platform(self) -> bool:
        return self.account == self.emulator.platform_id

    @property
    def application(self) -> str | None:
        """Objects a platform creates on a connected account carry its ca_ id."""
        return None if self.is_platform else self.emulator.config.client_id

    def now(self) -> int:
        return self.emulator.clock.now()

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def emit(
        self,
        type: str,
        obj: dict[str, Any],
        *,
        previous: dict[str, Any] | None = None,
        account: str | None = None,
    ) -> dict[str, Any]:
        return emit(
            self.emulator,
            account=account or self.account,
            type=type,
            obj=obj,
            previous=previous,
            request_id=self.request_id,
            idempotency_key=self.idempotency_key,
        )

    def for_account(self, account: str) -> Ctx:
        return Ctx(
            self.emulator,
            account,
            self.base_url,
            self.request_id,
            self.idempotency_key,
            self.key_hint,
        )


class Emulator:
    def __init__(
        self, config: EmulatorConfig | None = None, *, deliver: Deliver | None = None
    ):
        self.config = config or EmulatorConfig()
        self.store = Store(self.config.db_path)
        self.clock = Clock(
            offset=float(self.store.meta_get("clock_offset", "0") or 0),
            time_scale=self.config.time_scale,
        )
        self.deliver: Deliver = deliver or http_deliver
        # Injected faults (off unless /_emulator/faults sets a plan).
        self.faults = FaultPlan()
        self._wakeup = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.platform_id = self._ensure_platform()
        from stripe_emulator.app import EmulatorApp

        self.app = EmulatorApp(self)

    # --- identity ---------------------------------------------------------------------

    def _ensure_platform(self) -> str:
        platform_id = self.store.meta_get("platform_account")
        if platform_id:
            return platform_id
        platform_id = new_id("account")
        acct = objects.account(
            id=platform_id,
            created=self.clock.now(),
            email="platform@apimon.invalid",
            business_name=self.config.platform_name,
            country="US",
        )
        objects.complete_onboarding(acct, now=self.clock.now(), ip=None)
        acct["_platform"] = True
        with self.store.atomic():
            self.store.insert(acct, account=platform_id)
            self.store.meta_set("platform_account", platform_id)
        return platform_id

    def base_url(self) -> str:
        return (
            self.config.public_url
            or self.store.meta_get("base_url")
            or DEFAULT_BASE_URL
        )

    def remember_base_url(self, url: str) -> None:
        if not self.config.public_url and self.store.meta_get("base_url") != url:
            self.store.meta_set("base_url", url)

    def context(
        self, account: str | None = None, *, base_url: str | None = None
    ) -> Ctx:
        return Ctx(self, account or self.platform_id, base_url or self.base_url())

    def new_secret(self, prefix: str) -> str:
        return f"{prefix}_{random_token(32)}"

    # --- time -------------------------------------------------------------------------

    def now(self) -> int:
        return self.clock.now()

    def _save_clock(self) -> None:
        self.store.meta_set("clock_offset", repr(self.clock.offset))

    def is_new(self) -> bool:
        """Nothing has happened yet: the emulator holds only its platform account."""
        return self.store.holds_only(self.platform_id)

    def start_clock_at(self, timestamp: int) -> None:
        """Set a new emulator's clock to `timestamp`, which may be in the past, as a
        Stripe test clock starts at its `frozen_time`: a history can then be written
        with the times it happened at (apimon's `seed_demo` writes 60 days). Refused
        (ValueError) once the emulator holds anything but its platform account: its
        objects' timestamps and schedules only move forward."""
        with self.store.lock:
            if not self.is_new():
                raise ValueError(
                    "the emulator already holds objects: its clock only moves forward"
                )
            self.clock.offset = 0.0
            self.clock.offset = timestamp - self.clock.now()
            self._save_clock()

    def advance(self, seconds: float) -> None:
        """Move emulator time forward, running every job that falls due on the way at
        its own time (a retry scheduled for day 3 runs with day-3 timestamps)."""
        from stripe_emulator import automation

        with self.store.lock:
            target = self.clock.now() + seconds
            for _ in range(10_000):
                due = automation.next_due_at(self)
                if due is None or due > target:
                    break
                self.clock.move_to(due)
                self._save_clock()
                automation.run_due(self)
            self.clock.move_to(int(target))
            self._save_clock()
            automation.run_due(self)

    def run_due(self) -> int:
        """Run the automatic jobs that are due now; how many ran. The store's lock is
        taken per job (and for the indexed look-up of due work), not over the pass, so
        API requests are not held up behind a long one."""
        from stripe_emulator import automation

        return automation.run_due(self)

    # --- webhooks ---------------------------------------------------------------------

    def set_webhook_sink(self, deliver: Deliver | None) -> None:
        """Route deliveries to `deliver(url, body, headers) -> status` (None: HTTP)."""
        self.deliver = deliver or http_deliver

    def deliver_pending(self, *, everything: bool = False) -> list[DeliveryResult]:
        """Deliver due webhooks now, including events the receiver's own calls cause.
        Failed ones are rescheduled with backoff; `advance` past it to retry them."""
        results: list[DeliveryResult] = []
        for _ in range(50):
            batch = deliver_due(self, everything=everything)
            if not batch:
                break
            results.extend(batch)
            everything = False
        return results

    def wake(self) -> None:
        self._wakeup.set()

    # --- lifecycle --------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything: a fresh emulator with a new platform account."""
        with self.store.lock:
            self.store.reset()
            self.faults = FaultPlan()
            self.clock.offset = 0.0
            self.platform_id = self._ensure_platform()

    def start_background(self, *, tick: float = 1.0) -> None:
        """Server mode: run due jobs and deliver webhooks from background threads."""
        self._stop.clear()

        def jobs() -> None:
            while not self._stop.wait(tick):
                try:
                    self.run_due()
                except Exception:
                    log.exception("automatic job failed")

        def deliveries() -> None:
            while not self._stop.is_set():
                self._wakeup.wait(tick)
                self._wakeup.clear()
                try:
                    self.deliver_pending()
                except Exception:
                    log.exception("webhook delivery loop failed")

        for target, name in (
            (jobs, "stripe-emulator-jobs"),
            (deliveries, "stripe-emulator-webhooks"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop_background(self) -> None:
        self._stop.set()
        self._wakeup.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def serve_in_thread(
        self, host: str = "127.0.0.1", port: int = 0
    ) -> tuple[str, BaseWSGIServer]:
        """Serve this emulator over real HTTP from a thread (for browser tests that need
        the hosted pages while the test itself uses the in-process client). Returns the
        base URL and the server; call `server.shutdown()` when done."""
        server = make_server(host, port, self.app, threaded=True)
        thread = threading.Thread(
            target=server.serve_forever, name="stripe-emulator-http", daemon=True
        )
        thread.start()
        return f"http://{host}:{server.server_port}", server

    def close(self) -> None:
        self.stop_background()
        self.store.close()
