"""The emulator's notion of time.

Emulator time is wall-clock time plus an offset that only moves forward, so tests and
demos can jump ahead ("three days later the retry runs") without waiting. The offset
is kept in the database, so a restarted emulator keeps the time it had reached.

`time_scale` compresses the emulator's own schedules (auto-finalization, payment
retries, webhook backoff): with a scale of 1440 a day of Stripe's schedule takes a
minute of wall time. Timestamps on objects stay in emulator time.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Clock:
    def __init__(
        self,
        *,
        offset: float = 0.0,
        time_scale: float = 1.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.offset = offset
        self.time_scale = time_scale
        self._wall = wall

    def now(self) -> int:
        return int(self._wall() + self.offset)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the emulator clock only moves forward")
        self.offset += seconds

    def move_to(self, timestamp: int) -> None:
        """Jump forward to `timestamp` (never backwards)."""
        delta = timestamp - (self._wall() + self.offset)
        if delta > 0:
            self.offset += delta

    def delay(self, seconds: float) -> int:
        """A delay from one of Stripe's schedules, compressed by the time scale."""
        return max(1, round(seconds / self.time_scale)) if seconds > 0 else 0
