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


@pytest.mark.parametrize(
    "prefix, spec",
    [("/weather", "WEATHER_OPENAPI"), ("/quotes", "QUOTES_OPENAPI")],
)
def test_the_stores_example_call_of_each_demo_api_is_answered(api, prefix, spec):
    # The store's curl example is the gateway URL + example_call(openapi); the
    # gateway forwards it to backend_url (the sample API + prefix).
    from publisher import demo
    from publisher.openapi import example_call

    call = example_call(getattr(demo, spec))
    assert call and call != "/"
    assert api.get(prefix + call).status_code == 200


def test_air_quality(api):
    first = api.get("/air/current", params={"city": "Berlin"}).json()
    assert first == api.get("/air/current", params={"city": "Berlin"}).json()
    assert 0 < first["aqi"] <= 500 and first["category"]
    assert api.get("/air/current").status_code == 400


def test_fx_rates_and_conversions(api):
    latest = api.get("/fx/latest", params={"base": "eur"}).json()
    assert latest["base"] == "EUR" and "EUR" not in latest["rates"]
    assert 100 < latest["rates"]["JPY"] < 250
    converted = api.get(
        "/fx/convert", params={"from": "USD", "to": "JPY", "amount": "100"}
    ).json()
    assert converted["result"] == round(100 * converted["rate"], 2)
    assert api.get("/fx/latest", params={"base": "XYZ"}).status_code == 400
    assert (
        api.get("/fx/convert", params={"from": "USD", "amount": "-1"}).status_code
        == 400
    )


def test_fraud_scores(api):
    score = api.get("/fraud/score", params={"amount": "120.50", "country": "de"}).json()
    assert 0 <= score["score"] <= 99 and score["country"] == "DE"
    assert score["decision"] in ("approve", "review", "decline")
    risky = api.get(
        "/fraud/score", params={"amount": "5000", "email": "a@b.test"}
    ).json()
    assert {"large_amount", "disposable_email"} <= set(risky["reasons"])
    assert api.get("/fraud/score").status_code == 400


def test_payments(api):
    charge = api.post(
        "/payments/charges", json={"amount": 1999, "currency": "EUR", "reference": "1"}
    )
    assert charge.status_code == 201
    body = charge.json()
    assert body["id"].startswith("ch_") and body["amount"] == 1999
    assert body["status"] in ("succeeded", "declined")
    assert api.get(f"/payments/charges/{body['id']}").status_code == 200
    assert api.get("/payments/charges/nope").status_code == 404
    assert api.post("/payments/charges", content=b"[").status_code == 400
    assert (
        api.post("/payments/charges", json={"amount": 1.5, "currency": "EUR"})
    ).status_code == 400


def test_every_demo_get_operation_answers_with_its_examples(api):
    # The store shows subscribers calls made from these documents.
    from publisher.demo import CATALOGS

    for catalog in CATALOGS.values():
        for spec in catalog.apis:
            for path, operations in spec.openapi["paths"].items():
                if "get" not in operations or "{" in path:
                    continue
                params = {
                    p["name"]: p["example"]
                    for p in operations["get"]["parameters"]
                    if p["in"] == "query" and "example" in p
                }
                response = api.get(spec.backend_path + path, params=params)
                assert response.status_code == 200, (spec.name, path, response.text)


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


def test_text_completion_reports_its_tokens_in_a_meter_header(api):
    answer = api.post(
        "/text/v1/complete", json={"prompt": "Tell me a story", "max_tokens": 12}
    )

    assert answer.status_code == 200
    body = answer.json()
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 12}
    assert len(body["text"].split()) == 12
    assert answer.headers["Apimon-Meter-tokens"] == "16"
    again = api.post(
        "/text/v1/complete", json={"prompt": "Tell me a story", "max_tokens": 12}
    )
    assert again.json() == body  # the same prompt, the same answer


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"prompt": 3},
        {"prompt": "x", "max_tokens": 0},
        {"prompt": "x", "max_tokens": True},
    ],
)
def test_text_completion_refuses_bad_input(api, body):
    assert api.post("/text/v1/complete", json=body).status_code == 400
