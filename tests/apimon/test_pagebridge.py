"""Django's pages inside the ASGI app (apimon.pagebridge): what a browser gets, what a
page thread keeps between pages, and how pages share the threads. Driven through the
ASGI protocol as uvicorn drives it; the whole app under a real uvicorn server is in
tests/gateway/test_uvicorn.py."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from apimon import pagebridge
from apimon.pagebridge import SPILL_AFTER, PageBridge


def run_async(coroutine):
    """Run `coroutine` on an event loop of its own, in a thread of its own: the main
    thread may hold a running loop of another test's (Playwright's sync API)."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def call(app, path="/", *, method="GET", body=b"", chunks=None):
    """One request through the ASGI app: the messages it sent back."""
    sent = []
    parts = chunks if chunks is not None else [body]

    async def receive():
        if parts:
            part = parts.pop(0)
            return {"type": "http.request", "body": part, "more_body": bool(parts)}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "method": method, "path": path, "query_string": b"",
        "http_version": "1.1", "headers": [(b"host", b"testserver")],
        "server": ("testserver", 80), "client": ("127.0.0.1", 5000),
    }  # fmt: skip
    run_async(app(scope, receive, send))
    return sent


def body_of(sent) -> bytes:
    return b"".join(m.get("body", b"") for m in sent[1:])


def echo(environ, start_response):
    data = environ["wsgi.input"].read()
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Seen", "yes")])
    return [environ["REQUEST_METHOD"].encode(), b" ", data]


class Page(list):
    """A response as Django's HttpResponse shows itself to a WSGI server."""

    streaming = False
    closed = False

    def close(self):
        self.closed = True


def test_a_page_arrives_whole_with_its_status_and_headers():
    page = Page([b"<h1>", b"Store", b"</h1>"])

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html")])
        return page

    sent = call(PageBridge(app, threads=2))
    assert sent[0] == {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/html")],
    }
    # The body in one message, after the page was closed (Django's request_finished).
    assert sent[1:] == [{"type": "http.response.body", "body": b"<h1>Store</h1>"}]
    assert page.closed


def test_the_request_body_reaches_the_page_in_any_number_of_parts():
    sent = call(PageBridge(echo, threads=1), method="POST", chunks=[b"a=1", b"&b=2"])
    assert sent[0]["status"] == 201
    assert (b"x-seen", b"yes") in sent[0]["headers"]
    assert body_of(sent) == b"POST a=1&b=2"


def test_a_streamed_answer_goes_out_chunk_by_chunk_and_is_closed():
    closed = []

    class Stream:
        streaming = True

        def __iter__(self):
            yield b"day,quantity\n"
            yield b""  # an empty chunk is not sent
            yield b"2026-12-01,3\n"

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/csv")])
        return Stream()

    sent = call(PageBridge(app, threads=1))
    assert [m["type"] for m in sent] == ["http.response.start"] + [
        "http.response.body"
    ] * 3
    assert [m.get("more_body", False) for m in sent[1:]] == [True, True, False]
    assert body_of(sent) == b"day,quantity\n2026-12-01,3\n"
    assert closed == [True]


def test_a_page_thread_keeps_djangos_cache_connection_between_pages(settings):
    """Django keeps its cache clients in context-locals: a thread that started each
    page in a fresh context connected to the cache again for every page."""
    from django.core.cache import caches

    seen = []

    def app(environ, start_response):
        seen.append(caches["default"])
        start_response("200 OK", [])
        return Page([b"ok"])

    bridge = PageBridge(app, threads=1)
    call(bridge)
    call(bridge)
    assert len(seen) == 2
    assert seen[0] is seen[1]


def test_an_error_in_the_app_reaches_the_server():
    def app(environ, start_response):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        call(PageBridge(app, threads=1))


class Recorder:
    """A WSGI app whose pages take `fast` or `slow` seconds, recording how many run
    at once and when each ends."""

    def __init__(self, fast: float, slow: float) -> None:
        self.fast, self.slow = fast, slow
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.ended: dict[str, float] = {}

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.slow if path.startswith("/slow") else self.fast)
        with self.lock:
            self.running -= 1
            self.ended[path] = time.monotonic()
        start_response("200 OK", [])
        return Page([path.encode()])


async def _many(bridge, paths):
    sent = {}

    async def one(path):
        messages = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            messages.append(message)

        scope = {"type": "http", "method": "GET", "path": path, "query_string": b"",
                 "http_version": "1.1", "headers": []}  # fmt: skip
        await bridge(scope, receive, send)
        sent[path] = body_of(messages)

    for path in paths:
        asyncio.get_running_loop().create_task(one(path))
        await asyncio.sleep(0.001)  # in this order
    while len(sent) < len(paths):
        await asyncio.sleep(0.005)
    return sent


def test_fast_pages_run_one_at_a_time_on_several_threads(monkeypatch):
    # A spill time no page here comes near, however busy the machine.
    monkeypatch.setattr(pagebridge, "SPILL_AFTER", 1.0)
    app = Recorder(fast=0.002, slow=0)
    paths = [f"/fast/{i}" for i in range(12)]
    sent = run_async(_many(PageBridge(app, threads=4), paths))
    assert sent == {path: path.encode() for path in paths}
    assert app.most == 1


def test_a_slow_page_does_not_hold_up_the_next_ones():
    """A page waiting on Stripe, say: once it has run SPILL_AFTER, the next page
    starts beside it, and ends long before it."""
    app = Recorder(fast=0.001, slow=20 * SPILL_AFTER)
    bridge = PageBridge(app, threads=2)
    # Both threads started and idle, as in a process that has served pages.
    run_async(_many(bridge, ["/warm/1", "/warm/2"]))
    paths = ["/slow", "/fast/1", "/fast/2"]
    sent = run_async(_many(bridge, paths))
    assert set(sent) == set(paths)
    assert app.ended["/fast/1"] < app.ended["/slow"]
    assert app.ended["/fast/2"] < app.ended["/slow"]
    assert app.most == 2


def test_no_more_pages_run_at_once_than_there_are_threads():
    app = Recorder(fast=0, slow=10 * SPILL_AFTER)
    paths = [f"/slow/{i}" for i in range(6)]
    sent = run_async(_many(PageBridge(app, threads=3), paths))
    assert len(sent) == 6
    assert app.most == 3
