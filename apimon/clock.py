"""apimon's notion of now: real time plus the demo clock's offset.

A demo (DEBUG, or the Stripe emulator) can move the time of everything that
depends on it at once — the billing engine and dunning, the gateway's quota and rate
windows, the dates written on rows and shown on pages, and the Stripe emulator's
clock — with `manage.py demo_clock`, as Stripe's test clocks move a test's time.
The offset is one row in the database (`DemoClock`), the one source of truth for
every process; each process keeps it for `TTL` seconds, so reading the time costs
an addition, and a change reaches the other processes within that time.

With real Stripe and `DEBUG=0` the clock cannot be set and real time is used
whatever the row says (docs/decisions.md, "The demo clock").
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connections
from django.utils.dateparse import parse_datetime

from pricing.periods import add_cycles

TTL = 1.0  # seconds a process keeps the offset before it reads it again

_offset = 0
_read_at = float("-inf")  # time.monotonic() of the last read
_reading = threading.Lock()


REFUSED = (
    "The demo clock runs only in demo mode (DEBUG=1, or the Stripe emulator): this "
    "installation uses real Stripe with DEBUG=0, where apimon keeps real time."
)


class DemoClockRefused(Exception):
    """The demo clock is for demos: not with real Stripe in production."""


def allowed() -> bool:
    """The demo clock may run: DEBUG, or the Stripe emulator (no real money)."""
    return bool(settings.DEBUG or settings.STRIPE_EMULATOR)


def _read() -> int:
    from apimon.models import DemoClock

    row = DemoClock.objects.filter(pk=1).values_list("offset_seconds", flat=True)
    return int(row.first() or 0) if allowed() else 0


def _refresh() -> None:
    global _offset, _read_at
    with contextlib.suppress(DatabaseError):  # e.g. before `migrate`: keep the last
        _offset = _read()
    _read_at = time.monotonic()


def _refresh_in_thread() -> None:
    global _read_at
    if not allowed():
        _read_at = time.monotonic()  # production on real Stripe: nothing to read
        return
    if not _reading.acquire(blocking=False):
        return  # another thread is reading it

    def run() -> None:
        try:
            _refresh()
        finally:
            # The thread ends here: its own database connection must not outlive it.
            connections.close_all()
            _reading.release()

    threading.Thread(target=run, name="demo-clock", daemon=True).start()


def offset() -> int:
    """Seconds apimon's now is ahead of real time (0: real time)."""
    if time.monotonic() - _read_at >= TTL:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            _refresh()
        else:
            # In the gateway's event loop the database is not read: a thread reads
            # it and this request uses the offset read last.
            _refresh_in_thread()
    return _offset


def now() -> datetime:
    """apimon's now: an aware UTC datetime (use it instead of timezone.now())."""
    return datetime.now(UTC) + timedelta(seconds=offset())


def timestamp() -> float:
    """apimon's now in Unix seconds (the gateway's windows)."""
    return time.time() + offset()


def _store(seconds: int) -> None:
    global _offset, _read_at
    from apimon.models import DemoClock

    if not allowed():
        raise DemoClockRefused(REFUSED)
    DemoClock.objects.update_or_create(pk=1, defaults={"offset_seconds": seconds})
    _offset, _read_at = seconds, time.monotonic()


def set_to(at: datetime) -> datetime:
    """Move apimon's now to `at` (aware); returns the new now. Never backwards
    while ahead of real time: like a Stripe test clock it only moves forward (the
    Stripe emulator's clock cannot go back); `reset` returns to real time."""
    current = now()
    if at < current - timedelta(seconds=1):
        raise ValueError(
            f"The demo clock only moves forward: it is already "
            f"{current:%Y-%m-%d %H:%M:%S} UTC (reset returns to real time)."
        )
    # Whole seconds, rounded up: apimon's now is then `at` or up to a second
    # later, never before it (a period that ends at `at` has ended).
    _store(max(0, math.ceil((at - datetime.now(UTC)).total_seconds())))
    return now()


def reset() -> None:
    """Back to real time."""
    _store(0)


UNITS = {  # unit → (seconds, or the calendar cycle it adds)
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": "week",
    "month": "month",
    "year": "year",
}


def later(at: datetime, amount: int, unit: str) -> datetime:
    """`at` + `amount` units ("minute" … "year", plural too). Months and years are
    calendar ones, clamped as billing periods are (Jan 31 + 1 month = Feb 28)."""
    size = UNITS.get(unit.lower().removesuffix("s"))
    if size is None:
        raise ValueError(
            f"{unit!r} is not a unit: use {', '.join(UNITS)} (or their plurals)."
        )
    if amount < 0:
        raise ValueError("The demo clock only moves forward.")
    if isinstance(size, str):
        return add_cycles(at, size, amount)
    return at + timedelta(seconds=size * amount)


def parse_iso(value: str) -> datetime:
    """An ISO 8601 date-time (UTC when it names no offset) as an aware UTC
    datetime; ValueError when it is not one."""
    parsed = parse_datetime(value)
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO date-time (e.g. 2027-03-01T00:00Z)"
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # apimon's clock is UTC
    return parsed.astimezone(UTC)


def forget() -> None:
    """Drop this process's copy: the next read asks the database (tests)."""
    global _offset, _read_at
    _offset, _read_at = 0, float("-inf")
