"""A load generator with a known number of requests (asyncio + aiohttp), run in a
background thread so that faults can be injected while it runs.

Each request goes to one subscription (round robin) through one web process (round
robin), carries the subscription's key and its tag (`X-Count-Tag`, which the sample
backend counts), and asks for one path of the mix: by default nine in ten
`/fast` (200, counted) and one in ten `/status/500` (not counted: the gateway takes
it back). What every request got is recorded: its status, the gateway's error code
(`metering_unavailable`, `rate_limited`, …) and when.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

DEFAULT_MIX = (("/fast", 9), ("/status/500", 1))
NO_ANSWER = 0  # the status recorded when the connection failed or timed out


@dataclass
class Outcome:
    at: float  # seconds since the load started
    tag: str
    status: int
    code: str = ""


@dataclass
class LoadResult:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def sent(self) -> int:
        return len(self.outcomes)

    def by_status(self) -> Counter:
        return Counter(o.status for o in self.outcomes)

    def by_code(self) -> Counter:
        return Counter(o.code for o in self.outcomes if o.code)

    def for_tag(self, tag: str) -> Counter:
        return Counter(o.status for o in self.outcomes if o.tag == tag)

    def server_errors(self, *, allowed_codes: frozenset[str] = frozenset()) -> list:
        """5xx answers from apimon itself (a JSON error code, or none at all),
        other than those with an allowed code. The backend's own 500s (the mix's
        /status/500) carry no gateway code and are passed through: not counted
        here, see `backend_5xx`."""
        return [
            o
            for o in self.outcomes
            if o.status >= 500 and o.code and o.code not in allowed_codes
        ]

    def window(self, code: str) -> tuple[float, float] | None:
        """First and last time an answer had this gateway error code."""
        times = [o.at for o in self.outcomes if o.code == code]
        return (min(times), max(times)) if times else None

    def summary(self) -> dict:
        return {
            "sent": self.sent,
            "seconds": round(self.seconds, 2),
            "by_status": dict(sorted(self.by_status().items())),
            "by_code": dict(sorted(self.by_code().items())),
        }


class Load:
    def __init__(
        self,
        *,
        webs: list[str],
        path: str,
        subscriptions: list[dict],
        total: int,
        concurrency: int = 16,
        rate: float | None = None,
        mix: tuple[tuple[str, int], ...] = DEFAULT_MIX,
        timeout: float = 15.0,
    ) -> None:
        """`total` requests, `concurrency` at a time, at most `rate` per second
        (None: as fast as answered)."""
        self.webs = webs
        self.path = path
        self.subscriptions = subscriptions
        self.total = total
        self.concurrency = concurrency
        self.rate = rate
        self.paths = [p for p, weight in mix for _ in range(weight)]
        self.timeout = timeout
        self.result = LoadResult()
        self.sent = 0  # requests started so far (read while it runs)
        self.in_flight = 0
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self._thread.start()
        return self

    def run(self) -> LoadResult:
        """Start and wait."""
        return self.start().join()

    def join(self, timeout: float = 600) -> LoadResult:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the load did not finish in {timeout:g} s")
        if self._error is not None:
            raise self._error
        return self.result

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by join()
            self._error = exc

    async def _main(self) -> None:
        started = time.monotonic()
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        next_index = iter(range(self.total))
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

            async def worker() -> None:
                for i in next_index:
                    if self.rate:
                        delay = started + i / self.rate - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    await self._one(http, i, started)

            await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        self.result.seconds = time.monotonic() - started

    async def _one(self, http: aiohttp.ClientSession, i: int, started: float) -> None:
        sub = self.subscriptions[i % len(self.subscriptions)]
        web = self.webs[i % len(self.webs)]
        # Shifted once per round of subscriptions, so that every subscription gets
        # the whole mix even when there are as many subscriptions as paths.
        path = self.paths[(i + i // len(self.subscriptions)) % len(self.paths)]
        url = f"{web}{self.path}{path}"
        headers = {"X-API-Key": sub["key"], "X-Count-Tag": sub["tag"]}
        self.sent += 1
        self.in_flight += 1
        status, code = NO_ANSWER, ""
        try:
            async with http.get(url, headers=headers, allow_redirects=False) as answer:
                status = answer.status
                body = await answer.read()
                if status >= 400 and answer.content_type == "application/json":
                    code = _error_code(body)
        except (aiohttp.ClientError, TimeoutError, OSError):
            status = NO_ANSWER
        finally:
            self.in_flight -= 1
        self.result.outcomes.append(
            Outcome(round(time.monotonic() - started, 3), sub["tag"], status, code)
        )


def _error_code(body: bytes) -> str:
    import json

    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    return error.get("code", "") if isinstance(error, dict) else ""
