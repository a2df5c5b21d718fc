"""The whole ASGI application (apimon.asgi) under a real uvicorn server on loopback:
streaming both ways, slow backends served concurrently, Django beside the gateway,
and the in-process flush of the no-Redis mode."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import uvicorn

from gateway import redis as gateway_redis
from tests.gateway.conftest import LoopThread, _free_port, usage_total

PATH = "/gateway/acme/weather/v1"


@pytest.fixture
def server(metering, redis_db):
    import apimon.asgi

    apimon.asgi.gateway_application.forget_local()  # a module-level app
    loop = LoopThread()
    port = _free_port()
    config = uvicorn.Config(
        apimon.asgi.application, host="127.0.0.1", port=port, lifespan="on",
        log_level="warning", loop="asyncio",
    )  # fmt: skip
    srv = uvicorn.Server(config)
    task = asyncio.run_coroutine_threadsafe(srv.serve(), loop.loop)
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    task.result(15)
    loop.stop()


def test_a_large_answer_streams_chunk_by_chunk(metering, server):
    """The backend pauses 500 ms between its four 64 KiB chunks (1.5 s in all): the
    client gets the first chunk long before the last, so nothing buffers the whole
    body. Measured between chunks, not from the start, so a busy machine's slow
    start cannot fail it."""
    url = f"{server}{PATH}/bytes?n=262144&pause_ms=500"
    arrivals, total = [], 0
    with httpx.stream("GET", url, headers={"X-API-Key": metering.key}) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers
        for chunk in response.iter_bytes():
            arrivals.append(time.monotonic())
            total += len(chunk)
    assert total == 262144
    # A buffering proxy would hand over everything at once (a spread of ~0 s).
    assert arrivals[-1] - arrivals[0] > 1.0


def test_a_large_upload_streams_to_the_backend(metering, server):
    def body():
        for _ in range(80):
            yield b"y" * 65536

    response = httpx.post(
        f"{server}{PATH}/echo", content=body(), headers={"X-API-Key": metering.key},
        timeout=30,
    )  # fmt: skip
    assert response.json()["body_length"] == 80 * 65536


def test_slow_backends_do_not_serialize_requests(metering, server):
    async def run():
        async with httpx.AsyncClient(headers={"X-API-Key": metering.key}) as client:
            started = time.monotonic()
            answers = await asyncio.gather(
                *(client.get(f"{server}{PATH}/slow?ms=500") for _ in range(40))
            )
            return time.monotonic() - started, answers

    loop = LoopThread()  # the test thread may already run a loop (Playwright's)
    try:
        elapsed, answers = loop.run(run())
    finally:
        loop.stop()
    assert [r.status_code for r in answers] == [200] * 40
    assert elapsed < 2.5  # 40 × 0.5 s one after the other would take 20 s


def test_django_answers_beside_the_gateway(server):
    assert httpx.get(f"{server}/healthz").status_code == 200
    assert httpx.get(f"{server}/gateway/").status_code == 404


def test_without_redis_the_web_process_flushes_itself(without_redis, metering, server):
    assert gateway_redis.uses_stand_in()
    for _ in range(3):
        httpx.get(f"{server}{PATH}/fast", headers={"X-API-Key": metering.key})
    deadline = time.monotonic() + 8
    while usage_total(metering.subscription) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert usage_total(metering.subscription) == 3


def test_a_streamed_page_reaches_the_browser_whole(metering, server):
    """The usage CSV is a streamed answer: the page thread sends it chunk by chunk
    through the event loop (apimon.pagebridge), and the publisher gets every row."""
    from django.conf import settings
    from django.test import Client

    from apimon.models import User
    from gateway.services import usage_flush

    for _ in range(3):
        httpx.get(f"{server}{PATH}/fast", headers={"X-API-Key": metering.key})
    usage_flush()
    assert usage_total(metering.subscription) == 3
    browser = Client()
    browser.force_login(User.objects.get(email="owner@acme.test"))  # the owner
    cookie = browser.cookies[settings.SESSION_COOKIE_NAME].value

    response = httpx.get(
        f"{server}/t/{metering.org.slug}/publisher/usage.csv",
        cookies={settings.SESSION_COOKIE_NAME: cookie},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    rows = response.text.strip().splitlines()
    assert rows[0].startswith("day,api,tier,application,subscriber")
    assert [row.split(",")[-2:] for row in rows[1:]] == [["3", "requests"]]
