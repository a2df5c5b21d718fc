"""Meters at the gateway: weighted operations counted at admission, quantities the
backend reports in Apimon-Meter-<key> headers counted and stripped, meter quotas in
the one admission round trip, the verify endpoint, and the flush per meter."""

from __future__ import annotations

import asyncio
import logging

import httpx

from gateway import proxy
from gateway.models import UsageRecord
from publisher import meters, services
from publisher.models import MeterPrice, MeterSource
from publisher.openapi import operation_ids
from publisher.operations import parse
from tests.billing.test_meters import add_meter
from tests.gateway.conftest import flush_all

BASE = "/gateway/acme/weather/v1"


def used(subscription) -> dict[str, int]:
    """Units per meter in the flushed rows."""
    totals: dict[str, int] = {}
    for meter, count in UsageRecord.objects.filter(
        subscription=subscription
    ).values_list("meter", "count"):
        totals[meter] = totals.get(meter, 0) + count
    return {k: v for k, v in totals.items() if v}


def credits(metering, ops="GET /fast 5\nGET /echo/{x} 0\n* /status/{code} 3"):
    ids = operation_ids(metering.api.openapi_spec)
    return meters.meter_create(
        api=metering.api,
        actor=None,
        key="credits",
        display_name="Credits",
        unit_label="credit",
        source=MeterSource.OPERATIONS,
        operations_list=parse(ops, ids),
    )


def tokens(metering):
    return meters.meter_create(
        api=metering.api,
        actor=None,
        key="tokens",
        display_name="Tokens",
        unit_label="token",
        display_scale=1000,
        source=MeterSource.RESPONSE,
    )


def quota(metering, meter: str, limit: int, *, stop: bool = True):
    MeterPrice.objects.create(
        version=metering.tier.current_version,
        meter=meter,
        quota_limit=limit,
        quota_unit="day",
        stop_on_quota_reach=stop,
    )


def test_weighted_operations_count_their_units(metering, gateway):
    credits(metering)

    statuses = [
        gateway.get(f"{BASE}{path}", key=metering.key).status_code
        for path in ("/fast", "/fast", "/echo/anything", "/echo")
    ]

    assert statuses == [200, 200, 200, 200]
    flush_all()
    # 5 + 5 + 0 (GET /echo/{x}) + 1 (GET /echo: unlisted)
    assert used(metering.subscription) == {"requests": 4, "credits": 11}


def test_an_answer_that_does_not_count_takes_its_units_back(metering, gateway):
    credits(metering)

    assert gateway.get(f"{BASE}/status/500", key=metering.key).status_code == 500
    assert gateway.get(f"{BASE}/status/204", key=metering.key).status_code == 204

    flush_all()
    assert used(metering.subscription) == {"requests": 1, "credits": 3}


def test_a_reported_quantity_is_counted_and_never_reaches_the_caller(metering, gateway):
    tokens(metering)

    answer = gateway.get(
        f"{BASE}/headers",
        params={"Apimon-Meter-tokens": "1834", "Apimon-Meter-secret": "7"},
        key=metering.key,
    )

    assert answer.status_code == 200
    assert not [h for h in answer.headers if h.lower().startswith("apimon-meter")]
    flush_all()
    assert used(metering.subscription) == {"requests": 1, "tokens": 1834}


def test_a_missing_or_malformed_header_counts_zero_and_is_logged(
    metering, gateway, caplog
):
    tokens(metering)
    caplog.set_level(logging.WARNING, logger="apimon.gateway")

    for value in (None, "12abc", "-5", "1e3", " ", "99999999999999999999"):
        params = {} if value is None else {"Apimon-Meter-tokens": value}
        answer = gateway.get(f"{BASE}/headers", params=params, key=metering.key)
        assert answer.status_code == 200
        assert "apimon-meter-tokens" not in answer.headers
    gateway.get(
        f"{BASE}/headers", params={"Apimon-Meter-tokens": "10"}, key=metering.key
    )

    flush_all()
    assert used(metering.subscription) == {"requests": 7, "tokens": 10}
    malformed = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(malformed) == 5
    assert all(f"API {metering.api.pk}" in r.getMessage() for r in malformed)


def test_a_hard_token_quota_refuses_the_call_after_it_is_used_up(metering, gateway):
    tokens(metering)
    quota(metering, "tokens", 2_000)
    report = {"Apimon-Meter-tokens": "1500"}

    first = gateway.get(f"{BASE}/headers", params=report, key=metering.key)
    # 1,500 used < 2,000: served, and it may overshoot (documented).
    second = gateway.get(f"{BASE}/headers", params=report, key=metering.key)
    third = gateway.get(f"{BASE}/headers", params=report, key=metering.key)

    assert [first.status_code, second.status_code] == [200, 200]
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "quota_exceeded"
    assert "tokens" in third.json()["error"]["message"]
    flush_all()
    assert used(metering.subscription) == {"requests": 2, "tokens": 3000}


def calls_in_a_row(gateway, path, key, reports, *, at_once=False):
    """Calls on one connection, each with its answer's reported tokens, without
    waiting for anything in between (or all at once): as a client does."""

    async def go():
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway.app),
            base_url="http://gateway.test",
        ) as client:
            calls = [
                client.get(
                    path,
                    params={"Apimon-Meter-tokens": str(units)},
                    headers={"Authorization": f"Bearer {key}"},
                )
                for units in reports
            ]
            if at_once:
                answers = await asyncio.gather(*calls)
            else:
                answers = [await call for call in calls]
            return [a.status_code for a in answers]

    return gateway.loop.run(go())


def test_the_next_call_sees_the_tokens_of_the_one_before(metering, gateway):
    """Reported units ride on the next admission, which adds them before it checks
    the quota: back-to-back calls keep the hard quota exact."""
    tokens(metering)
    quota(metering, "tokens", 2_000)

    statuses = calls_in_a_row(
        gateway, f"{BASE}/headers", metering.key, [1500, 1500, 1500]
    )

    assert statuses == [200, 200, 429]
    flush_all()
    assert used(metering.subscription) == {"requests": 2, "tokens": 3000}


def test_reported_units_arrive_without_another_call(metering, gateway, redis_db):
    tokens(metering)

    assert calls_in_a_row(gateway, f"{BASE}/headers", metering.key, [1834]) == [200]
    gateway.loop.run(asyncio.sleep(proxy.REPORT_WITHIN * 10))  # no drain, no call

    flush_all()
    assert used(metering.subscription) == {"requests": 1, "tokens": 1834}


def test_the_tokens_of_concurrent_answers_are_all_counted(metering, gateway):
    tokens(metering)
    quota(metering, "tokens", 10**9)
    reports = [7, 70, 700, 7000, 70000, 11, 13]

    statuses = calls_in_a_row(
        gateway, f"{BASE}/headers", metering.key, reports, at_once=True
    )
    gateway.loop.run(asyncio.sleep(proxy.REPORT_WITHIN * 10))

    assert statuses == [200] * len(reports)
    flush_all()
    assert used(metering.subscription) == {"requests": 7, "tokens": sum(reports)}


def test_a_report_does_not_recreate_a_lost_quota_counter(metering, gateway, redis_db):
    """Redis lost the quota counter between an answer and its report: the report
    does not create a counter without the window's earlier usage (or its expiry);
    the next call seeds it from the database and the unflushed units."""
    tokens(metering)
    quota(metering, "tokens", 2_000)
    assert calls_in_a_row(gateway, f"{BASE}/headers", metering.key, [500]) == [200]
    flush_all()

    async def lose_the_counter_then_report():
        for key in redis_db.keys("am:gw:q:*"):
            redis_db.delete(key)
        await gateway.app.drain()

    statuses = calls_in_a_row(gateway, f"{BASE}/headers", metering.key, [1000])
    gateway.loop.run(lose_the_counter_then_report())

    assert statuses == [200]
    assert redis_db.keys("am:gw:q:*") == []
    # 1,500 used (500 flushed, 1,000 unflushed) < 2,000: served, then refused.
    assert calls_in_a_row(gateway, f"{BASE}/headers", metering.key, [1000, 1]) == [
        200,
        429,
    ]


def test_a_first_call_seeds_every_counter_it_needs(metering, gateway):
    """A monthly request quota and two meters with monthly quotas: on the first call
    of a window all three counters are seeded from the database, then it is served."""
    metering.set_tier(quota_limit=1_000, quota_unit="month")
    credits(metering)
    tokens(metering)
    for meter in ("credits", "tokens"):
        MeterPrice.objects.create(
            version=metering.tier.current_version,
            meter=meter,
            quota_limit=10_000,
            quota_unit="month",
        )

    answer = gateway.get(
        f"{BASE}/headers", params={"Apimon-Meter-tokens": "5"}, key=metering.key
    )

    assert answer.status_code == 200
    flush_all()
    assert used(metering.subscription) == {"requests": 1, "credits": 1, "tokens": 5}


def test_a_soft_meter_quota_never_refuses(metering, gateway):
    tokens(metering)
    quota(metering, "tokens", 10, stop=False)
    report = {"Apimon-Meter-tokens": "50"}

    statuses = [
        gateway.get(f"{BASE}/headers", params=report, key=metering.key).status_code
        for _ in range(3)
    ]

    assert statuses == [200, 200, 200]


def test_a_weighted_quota_is_checked_at_admission(metering, gateway):
    credits(metering)
    quota(metering, "credits", 10)

    statuses = [
        gateway.get(f"{BASE}/fast", key=metering.key).status_code for _ in range(3)
    ]

    assert statuses == [200, 200, 429]
    flush_all()
    assert used(metering.subscription) == {"requests": 2, "credits": 10}


def test_a_meter_quota_is_seeded_from_the_flushed_rows(metering, gateway, redis_db):
    credits(metering)
    quota(metering, "credits", 10)
    assert gateway.get(f"{BASE}/fast", key=metering.key).status_code == 200
    flush_all()
    # Redis lost its counters (a restart): the window is read from the database.
    for key in redis_db.keys("am:gw:q:*"):
        redis_db.delete(key)

    assert gateway.get(f"{BASE}/fast", key=metering.key).status_code == 200
    assert gateway.get(f"{BASE}/fast", key=metering.key).status_code == 429


def test_the_verify_endpoint_counts_weighted_operations(metering, gateway):
    credits(metering)

    answer = gateway.get("/gateway-verify/acme/weather/v1/fast", key=metering.key)

    assert answer.status_code == 200
    flush_all()
    assert used(metering.subscription) == {"requests": 1, "credits": 5}


def test_an_operation_id_weighs_its_path_at_the_gateway_and_the_verify_endpoint(
    metering, gateway
):
    def doc(path: str) -> dict:
        operation = {
            "operationId": "quick",
            "responses": {"200": {"description": "OK"}},
        }
        return {
            "openapi": "3.0.3",
            "info": {"title": "Weather", "version": "1"},
            "paths": {path: {"get": operation}},
        }

    api = metering.api
    api.openapi_spec = doc("/fast")
    api.save()
    credits(metering, ops="quick 5")  # resolved to GET /fast by the document

    assert gateway.get(f"{BASE}/fast", key=metering.key).status_code == 200
    verify = gateway.get("/gateway-verify/acme/weather/v1/fast", key=metering.key)
    assert verify.status_code == 200
    flush_all()
    assert used(metering.subscription) == {"requests": 2, "credits": 10}

    # The publisher's new document moves the operation: the gateway follows.
    services.api_update(
        api=api,
        actor=None,
        name=api.name,
        version=api.version,
        context=api.context,
        backend_url=api.backend_url,
        openapi_spec=doc("/echo/{x}"),
    )
    assert gateway.get(f"{BASE}/echo/a", key=metering.key).status_code == 200
    assert gateway.get(f"{BASE}/fast", key=metering.key).status_code == 200
    flush_all()
    assert used(metering.subscription) == {"requests": 4, "credits": 16}


def test_a_new_meter_is_counted_at_once(metering, gateway):
    assert gateway.get(f"{BASE}/fast", key=metering.key).status_code == 200
    credits(metering)  # the API's cached entry is dropped with the change

    assert gateway.get(f"{BASE}/fast", key=metering.key).status_code == 200

    flush_all()
    assert used(metering.subscription) == {"requests": 2, "credits": 5}


# -- the ingest API --------------------------------------------------------------

from tests.gateway.test_ingest import event, ingest  # noqa: E402, F401 - fixture


def metered(metering, ikey, quantity, meter=None, **extra):
    """An ingest event with a quantity (and a meter, when given)."""
    e = {**event(metering, ikey, **extra), "quantity": quantity}
    e.pop("count")
    if meter is not None:
        e["meter"] = meter
    return e


def test_ingested_events_name_a_meter_and_a_quantity(metering, ingest):  # noqa: F811
    tokens(metering)
    batch = [
        metered(metering, "a", 1834, "tokens"),
        metered(metering, "b", 2),  # requests
        event(metering, "c"),  # requests, count 1
        metered(metering, "d", 1, "credits"),  # not a meter of the API
        metered(metering, "e", 1, "Tokens!"),
        {**event(metering, "f", count=2), "quantity": 2},
        metered(metering, "g", 0, "tokens"),
    ]

    body = ingest.post(batch).json()

    assert [
        (r["status"], (r.get("error") or {}).get("code")) for r in body["results"]
    ] == [
        ("accepted", None),
        ("accepted", None),
        ("accepted", None),
        ("rejected", "unknown_meter"),
        ("rejected", "bad_meter"),
        ("rejected", "bad_count"),
        ("rejected", "bad_count"),
    ]
    flush_all()  # which adds the ingested units to the rows
    assert used(metering.subscription) == {"requests": 3, "tokens": 1834}
    # The same event again is a duplicate; the same key for another meter is not.
    again = ingest.post(
        [metered(metering, "a", 1834, "tokens"), metered(metering, "a", 1834)]
    ).json()
    assert [r["status"] for r in again["results"]] == ["duplicate", "rejected"]
    flush_all()
    assert used(metering.subscription) == {"requests": 3, "tokens": 1834}


def test_verify_then_ingest_counts_what_the_gateway_counts(
    metering,
    gateway,
    ingest,  # noqa: F811
):
    """An external gateway: the verify endpoint weighs the call, the ingest API
    takes the reported quantity; the rows equal those of the built-in gateway."""
    credits(metering)
    tokens(metering)
    through = gateway.get(
        f"{BASE}/headers", params={"Apimon-Meter-tokens": "40"}, key=metering.key
    )
    assert through.status_code == 200
    flush_all()
    builtin = used(metering.subscription)
    UsageRecord.objects.all().delete()

    assert (
        gateway.get(
            "/gateway-verify/acme/weather/v1/headers", key=metering.key
        ).status_code
        == 200
    )
    accepted = ingest.post([metered(metering, "t", 40, "tokens", hours_ago=0)])
    assert accepted.json()["accepted"] == 1
    flush_all()

    assert (
        used(metering.subscription)
        == builtin
        == {"requests": 1, "tokens": 40, "credits": 1}
    )


def test_the_sample_text_api_is_counted_by_its_tokens(metering, gateway, backend_url):
    api = metering.make_api(context="text", backend=f"{backend_url}/text/v1")
    add_meter(api, "tokens", "Tokens", "token", scale=1000)
    sub = metering.subscribe(metering.application, api, metering.tier)

    answer = gateway.request(
        "POST",
        "/gateway/acme/text/v1/complete",
        key=metering.key,
        json={"prompt": "Tell me a story", "max_tokens": 12},
    )

    assert answer.status_code == 200
    assert answer.json()["usage"] == {"prompt_tokens": 4, "completion_tokens": 12}
    assert "apimon-meter-tokens" not in answer.headers
    flush_all()
    assert used(sub) == {"requests": 1, "tokens": 16}


def test_a_meters_billing_period_quota_and_the_monthly_request_quota_keep_their_windows(
    metering, gateway
):
    """Requests limited per calendar month, credits per billing period (anchored on
    the 10th): each counter follows its own window."""
    from datetime import UTC, datetime

    from store.models import Subscription

    anchor = datetime(2027, 1, 10, tzinfo=UTC)
    Subscription.objects.filter(pk=metering.subscription.pk).update(
        started_at=anchor, current_period_start=anchor
    )
    metering.set_tier(quota_limit=1_000, quota_unit="month")
    credits(metering)
    MeterPrice.objects.create(
        version=metering.tier.current_version,
        meter="credits",
        quota_limit=10,
        quota_unit="period",
    )
    gateway.clock.now = datetime(2027, 1, 31, 12, tzinfo=UTC).timestamp()
    assert [
        gateway.get(f"{BASE}/fast", key=metering.key).status_code for _ in range(3)
    ] == [200, 200, 429]

    # A new calendar month, the same billing period (Jan 10 – Feb 10).
    gateway.clock.now = datetime(2027, 2, 3, 12, tzinfo=UTC).timestamp()
    assert gateway.get(f"{BASE}/fast", key=metering.key).status_code == 429
    # The next billing period.
    gateway.clock.now = datetime(2027, 2, 10, 1, tzinfo=UTC).timestamp()
    assert gateway.get(f"{BASE}/fast", key=metering.key).status_code == 200
