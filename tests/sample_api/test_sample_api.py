"""The sample backend answers like a small real API."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from publisher.demo import WEATHER_DOCS
from tests.gateway.conftest import backend_url  # noqa: F401  (session fixture)


@pytest.fixture
def api(backend_url):  # noqa: F811
    with httpx.Client(base_url=backend_url, timeout=10) as client:
        yield client


def test_current_weather_is_stable_for_a_city(api):
    first = api.get("/weather/current", params={"city": "Lisbon"}).json()
    again = api.get("/weather/current", params={"city": "Lisbon"}).json()
    assert first == again
    assert first["city"] == "Lisbon"
    assert {"temperature_c", "condition", "humidity_percent", "wind_kph"} <= set(first)


def test_weather_needs_a_city_and_sane_days(api):
    assert api.get("/weather/current").status_code == 400
    forecast = api.get("/weather/forecast", params={"city": "Oslo", "days": 5}).json()
    assert len(forecast["days"]) == 5
    assert (
        api.get("/weather/forecast", params={"city": "Oslo", "days": 40}).status_code
        == 400
    )


def test_quotes(api):
    quote = api.get("/quotes/3").json()
    assert quote["id"] == 3 and quote["author"]
    assert api.get("/quotes/random").json()["text"]
    assert api.get("/quotes/999").status_code == 404


def test_bench_endpoints(api):
    assert api.get("/_bench/fast").json() == {"ok": True}
    assert api.get("/_bench/status/503").status_code == 503
    assert len(api.get("/_bench/bytes", params={"n": 100_000}).content) == 100_000
    echo = api.post("/_bench/echo/x?y=1", content=b"body").json()
    assert (echo["method"], echo["body"], echo["query"]) == ("POST", "body", "y=1")
    slow = api.get("/_bench/slow", params={"ms": 50})
    assert slow.elapsed.total_seconds() >= 0.05


def test_the_weather_docs_example_answer_has_the_real_fields(api):
    # The demo's documentation shows an example answer; a subscriber copies its
    # field names, so they must be the sample API's.
    example = json.loads(re.search(r"```json\n(.*?)```", WEATHER_DOCS, re.S).group(1))
    real = api.get("/weather/current", params={"city": "Lisbon"}).json()
    assert set(example) == set(real)


def test_the_served_counter_is_off_by_default(api):
    response = api.get("/_bench/fast", headers={"X-Count-Tag": "a"})
    assert response.status_code == 200
    assert api.get("/_served").status_code == 404


def test_with_count_served_it_counts_tagged_answers_per_tag_and_status():
    """The fault tests' ground truth: what the backend answered, per tag."""
    from aiohttp.test_utils import TestClient, TestServer

    from sample_api import create_app

    async def scenario():
        async with TestClient(TestServer(create_app(count_served=True))) as client:
            for path, tag in [
                ("/_bench/fast", "sub-1"),
                ("/_bench/fast", "sub-1"),
                ("/_bench/status/503", "sub-1"),
                ("/_bench/status/302", "sub-2"),
                ("/weather/current", "sub-2"),  # 400: no city
                ("/_bench/fast", None),  # untagged: not counted
            ]:
                headers = {"X-Count-Tag": tag} if tag else {}
                await client.get(path, headers=headers, allow_redirects=False)
            counts = await (await client.get("/_served")).json()
            await client.post("/_served/reset")
            after = await (await client.get("/_served")).json()
            return counts, after

    from tests.gateway.conftest import LoopThread

    loop = LoopThread()  # the test thread may already run a loop (Playwright's)
    try:
        counts, after = loop.run(scenario())
    finally:
        loop.stop()
    assert counts == {"sub-1": {"200": 2, "503": 1}, "sub-2": {"302": 1, "400": 1}}
    assert after == {}
