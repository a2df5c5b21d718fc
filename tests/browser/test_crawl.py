"""A crawler walks the seeded demo in Chromium as each kind of person: anonymous,
subscribers, a publisher, an owner and the platform operator (the admin). From each
one's first page it follows every same-origin link, breadth first, and submits no
form. Every page must answer below 500; no linked page may answer 4xx (a link to a
page its reader may not open is a broken link too); nothing a page loads from
apimon (scripts, styles, images, the favicon, its own fetches) may fail; Chromium
must log no console error and no uncaught exception; and no GET may write to the
database (every INSERT, UPDATE or DELETE the live server sends while a page and what
it fetches load is reported).

The walk stays bounded: URLs are grouped by pattern (numbers in the path become
`<n>`, the query keeps only its parameter names), and at most `PER_PATTERN` pages of
a pattern are opened, one for a pattern with a query (a list's filters). The admin
is Django's own pages over apimon's models: the operator's walk opens its index,
each list and each list's first filter, and one object of each model (two links
deep)."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urldefrag, urlsplit

import pytest
from django.db.backends.signals import connection_created
from playwright.sync_api import Error as PlaywrightError

from apimon import demo
from tests.browser.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PER_PATTERN = 2
BUDGET = 150  # pages per walk, far above what the patterns allow today
# Logging out would end the walk's session (and is a POST form anyway); the admin's
# pop-up "add a related object" windows repeat its add pages.
SKIP = re.compile(r"^/(accounts/logout|admin/logout)/|[?&]_popup=1")


@dataclass
class Walk:
    who: str
    start: list[str]
    depth: int = 1000  # how many links deep to follow
    pages: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def pattern(url: str) -> tuple[str, int]:
    """(pattern, how many pages of it to open)."""
    parts = urlsplit(url)
    path = re.sub(r"/\d+(?=/|$)", "/<n>", parts.path)
    keys = sorted({key for key, _ in parse_qsl(parts.query, keep_blank_values=True)})
    if path.startswith("/admin/"):
        return path + ("?" if parts.query else ""), 1
    if parts.query:
        return f"{path}?{'&'.join(keys)}", 1
    return path, PER_PATTERN


class Writes:
    """Every INSERT, UPDATE and DELETE that any thread of this process sends to the
    database while installed: the live server answers each request in a thread of
    its own, with a connection of its own. Session rows are left out (a visit may
    touch its own session)."""

    WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, execute, sql, params, many, context):
        if self.WRITE.match(sql) and "django_session" not in sql:
            with self.lock:
                self.statements.append(" ".join(sql.split())[:100])
        return execute(sql, params, many, context)

    def _install(self, sender, connection, **kwargs) -> None:
        connection.execute_wrappers.append(self)

    def __enter__(self) -> Writes:
        connection_created.connect(self._install)
        return self

    def __exit__(self, *exc) -> None:
        connection_created.disconnect(self._install)

    def take(self) -> list[str]:
        with self.lock:
            taken, self.statements = self.statements, []
        return taken


def crawl(page, base: str, walk: Walk, *, writes: Writes, budget: int) -> None:
    shown = {"url": ""}

    def console(message) -> None:
        if message.type == "error":
            where = message.location.get("url") or ""
            walk.problems.append(
                f"console error on {shown['url']}: {message.text} {where}"
            )

    def failed(response) -> None:
        # Everything a page loads from apimon; the page itself is checked below.
        url = response.url
        if (
            url.startswith(base + "/")
            and response.status >= 400
            and url != shown["url"]
        ):
            walk.problems.append(f"{response.status} {url} loaded by {shown['url']}")

    page.on("console", console)
    page.on(
        "pageerror",
        lambda error: walk.problems.append(
            f"uncaught exception on {shown['url']}: {error}"
        ),
    )
    page.on("response", failed)

    opened: dict[str, int] = {}
    queued: set[str] = set()
    queue = deque((base + path, "start", 0) for path in walk.start)
    while queue and len(walk.pages) < budget:
        url, source, depth = queue.popleft()
        key, limit = pattern(url)
        if opened.get(key, 0) >= limit:
            continue
        opened[key] = opened.get(key, 0) + 1
        walk.pages.append(url)
        shown["url"] = url
        writes.take()
        links: list[str] = []
        try:
            response = page.goto(url)
        except PlaywrightError as error:
            if "Download is starting" not in str(error):
                raise
            response = page.request.get(url)  # a CSV: only its status matters
        else:
            links = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        if response.status >= 400:
            kind = "broken link" if response.status < 500 else "server error"
            walk.problems.append(f"{kind} {response.status} {url} (from {source})")
        if "/accounts/login/" in page.url and "/accounts/" not in url:
            walk.problems.append(f"{url} (from {source}) asks {walk.who} to log in")
        if written := writes.take():
            walk.problems.append(f"GET {url} wrote to the database: {written[:3]}")
        for link in links if depth < walk.depth else ():
            link, _fragment = urldefrag(link)
            if not link.startswith(base + "/") or link in queued:
                continue
            if SKIP.search(link[len(base) :]):
                continue
            queued.add(link)
            queue.append((link, urlsplit(url).path, depth + 1))
    page.wait_for_timeout(500)  # what the last page still loads


def test_every_link_of_the_demo_works_for_everyone(
    browser, live_server, stripe_emulator
):
    started = time.monotonic()
    demo.seed()
    seeded = time.monotonic() - started
    walks = [
        Walk("anonymous", ["/", "/t/acme/store/", "/t/globex/store/"]),
        Walk("subscriber@acme.localhost", ["/home/"]),
        Walk("finance@initech.localhost", ["/home/"]),  # on hold, waiting for payment
        Walk("publisher@acme.localhost", ["/home/"]),
        Walk("owner@globex.localhost", ["/home/"]),
        Walk(demo.OPERATOR, ["/admin/"], depth=2),
    ]
    for walk in walks:
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": 1280, "height": 860}
        )
        context.set_default_timeout(15_000)
        page = context.new_page()
        try:
            if walk.who != "anonymous":
                log_in(page, walk.who, demo.DEMO_PASSWORD)
            with Writes() as writes:
                crawl(page, live_server.url, walk, writes=writes, budget=BUDGET)
        finally:
            context.close()
    pages = {walk.who: len(walk.pages) for walk in walks}
    print(
        f"seeded in {seeded:.0f} s, then walked {pages} pages in "
        f"{time.monotonic() - started - seeded:.0f} s"
    )
    report = "\n".join(f"{w.who}: {problem}" for w in walks for problem in w.problems)
    assert not report, report
    assert all(count > 10 for count in pages.values()), pages
    # Nothing was left unwalked for lack of budget.
    assert all(count < BUDGET for count in pages.values()), pages
