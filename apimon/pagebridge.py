"""Django's pages (its WSGI handler) inside the ASGI app, on a fixed pool of threads.

a2wsgi's `WSGIMiddleware` does this job, with costs that showed on a fast machine,
where a page takes 1–2 ms (bench/README.md, "A faster machine: the pages' bridge"):

- it runs each request in a fresh copy of the event loop's context, and Django
  keeps its cache connections in context-locals: every page built a new Redis
  client and connected to Redis again;
- the page thread hands each part of the answer (the status line, every chunk, the
  end) to the event loop and waits for it: three waits for the event loop per page;
- its `ThreadPoolExecutor` wakes another thread for each page (below).

Here each thread runs its requests in a context of its own that lives as long as
the thread, as a WSGI server's threads do, and a page that is not streamed (Django's
`HttpResponse`: its body is in memory anyway) comes back to the event loop whole,
once, to be sent. A streamed answer (`StreamingHttpResponse`, a static file) is sent
chunk by chunk from its thread, each chunk waiting until the event loop has sent
it, so a slow reader holds the thread, never the whole body in memory. The request
body and the WSGI environ are a2wsgi's (`Body`, `build_environ`).

Pages start one at a time, and a second one only once the page running has taken
`SPILL_AFTER` (it is then most likely waiting: on Stripe, on a slow query), up to
`threads` at once. Python runs one thread at a time: two fast pages rendered side by
side take longer together than one after the other (the threads pass the GIL back
and forth), which cost the cheapest pages a sixth of their throughput with two
threads and a quarter with four; a page waiting for a remote answer still never
holds up the others for long.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import itertools
import logging
import threading
import time
from collections.abc import Callable

from a2wsgi.wsgi import Body, build_environ

log = logging.getLogger(__name__)


class PageBridge:
    """An ASGI app that serves a WSGI app on `threads` threads (see the module)."""

    def __init__(self, app, *, threads: int) -> None:
        self.app = app
        self.pool = PagePool(threads)
        self._local = threading.local()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # no websockets here; lifespan is apimon.asgi's
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1000})
            return
        loop = asyncio.get_running_loop()
        environ = build_environ(scope, Body(loop, receive))
        # Settled by the page thread with call_soon_threadsafe: lighter than
        # run_in_executor's two chained futures (a lock and a condition per page).
        done = loop.create_future()
        self.pool.run(self._in_thread, environ, loop, send, done)
        answer = await done
        if answer is not None:  # not streamed: the whole answer, sent here
            start, body = answer
            await send(start)
            await send({"type": "http.response.body", "body": body})

    # ---- in a page thread ----------------------------------------------------------

    def _in_thread(self, environ, loop, send, done: asyncio.Future) -> None:
        context = getattr(self._local, "context", None)
        if context is None:
            context = self._local.context = contextvars.Context()
        try:
            answer = context.run(self._respond, environ, loop, send)
        except BaseException as exc:  # handed to the request, as uvicorn expects
            loop.call_soon_threadsafe(_settle, done, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, done, answer, None)

    def _respond(self, environ, loop, send):
        """The answer as (start message, body), or None once it has been streamed."""
        status_headers: list = []
        written: list[bytes] = []

        def start_response(status, headers, exc_info=None):
            if exc_info is not None and status_headers and status_headers[0] is SENT:
                raise exc_info[1].with_traceback(exc_info[2])
            status_headers[:] = [status, headers]
            return written.append  # WSGI's write(): Django never calls it

        iterable = self.app(environ, start_response)
        try:
            if getattr(iterable, "streaming", True) is False:
                body = b"".join((*written, *iterable))
                return _start(*status_headers), body

            def wait_sent(message) -> None:
                asyncio.run_coroutine_threadsafe(send(message), loop).result()

            def start() -> None:  # before the first non-empty chunk, or at the end
                if status_headers[0] is not SENT:
                    wait_sent(_start(*status_headers))
                    status_headers[:] = [SENT]

            for chunk in itertools.chain(written, iterable):
                if chunk:
                    start()
                    wait_sent(
                        {"type": "http.response.body", "body": chunk, "more_body": True}
                    )
            start()
            wait_sent({"type": "http.response.body", "body": b""})
            return None
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()


def _settle(done: asyncio.Future, answer, exc: BaseException | None) -> None:
    if done.cancelled():  # the request went away meanwhile
        return
    if exc is not None:
        done.set_exception(exc)
    else:
        done.set_result(answer)


class PagePool:
    """A fixed pool of threads that runs one page at a time, and one more each time
    the newest running page has run `SPILL_AFTER`, up to `threads` at once (see the
    module). A thread that finishes a page takes the next queued one itself, without
    sleeping, and a page that finds the pool idle goes to the thread that was busy
    last: waking another thread for each page, as `ThreadPoolExecutor` does, cost
    the cheapest pages a sixth to a quarter of their throughput. While pages are
    queued behind a running one, one idle thread (the watcher) sleeps until that
    page's spill time, so no page waits for a wake-up."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[Callable, tuple]] = collections.deque()
        self._started: list[float] = []  # when each running page started
        self._idle: list[threading.Condition] = []  # sleeping threads, newest last
        self._watcher: threading.Condition | None = None
        self._thread_count = 0

    def run(self, fn: Callable, *args) -> None:
        """Queue `fn(*args)`, which must handle its own errors (a page's are handed
        to its request)."""
        with self._lock:
            self._queue.append((fn, args))
            if not self._started or self._watcher is None:
                # A thread to run it now, or to watch for the running page's spill.
                self._wake_one()
            if self._thread_count < self.threads and not self._idle:
                name = f"page_{self._thread_count}"
                self._thread_count += 1
                threading.Thread(target=self._work, name=name, daemon=True).start()

    def _wake_one(self) -> None:
        if self._idle:
            self._idle.pop().notify()  # the one that slept last

    def _next(self, me: threading.Condition, finished: float | None):
        """The next page to run (its start time and work). `finished` is the start
        time of the page this thread just ran, ended here under the same lock, so no
        other thread sees the pool idle in between."""
        with self._lock:
            if finished is not None:
                self._started.remove(finished)
            while True:
                now = time.monotonic()
                started = self._started
                if self._queue:
                    if not started:
                        break
                    if len(started) < self.threads:
                        due = max(started) + SPILL_AFTER
                        if now >= due:
                            break
                        if self._watcher is None or self._watcher is me:
                            self._watcher = me
                            me.wait(due - now)
                            self._watcher = None
                            continue
                self._idle.append(me)
                me.wait()
                if me in self._idle:  # woken by a timeout or spuriously
                    self._idle.remove(me)
            started.append(now)
            work = self._queue.popleft()
            if self._queue and self._watcher is None:
                self._wake_one()  # a thread to watch for this page's spill
            return now, work

    def _work(self) -> None:
        me = threading.Condition(self._lock)
        finished = None
        while True:
            finished, (fn, args) = self._next(me, finished)
            try:
                fn(*args)
            except Exception:  # fn's own job; never lose the thread to it
                log.exception("page pool: uncaught error")


SPILL_AFTER = 0.02  # s a page runs alone before the next may start beside it
SENT = object()  # the status line has gone out: a later start_response can only raise


def _start(status: str, headers) -> dict:
    return {
        "type": "http.response.start",
        "status": int(status.split(" ", 1)[0]),
        "headers": [
            (name.strip().encode("latin-1").lower(), value.strip().encode("latin-1"))
            for name, value in headers
        ],
    }
