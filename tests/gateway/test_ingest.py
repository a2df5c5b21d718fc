"""The usage ingest API: POST /api/usage/events with an
organization's ingest token; each event stored once per idempotency key and added
by the flush to the hourly UsageRecord rows; per-event results; other tenants'
subscriptions refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.core import mail

from gateway.ingest import ingest_token_create, ingest_token_revoke
from gateway.models import UsageEvent, UsageRecord
from gateway.selectors import usage_for_period
from gateway.services import quota_alerts_send
from store.models import SubscriptionState
from tests.gateway.conftest import flush_all, usage_total

URL = "/api/usage/events"
# The subscription started 10 days ago at :20 past the hour (its hours start at :20).
NOW = datetime.now(UTC)
STARTED = (NOW - timedelta(days=10)).replace(minute=20, second=0, microsecond=0)


@pytest.fixture
def ingest(metering, redis_db, client):
    sub = metering.subscription
    sub.started_at = sub.current_period_start = STARTED
    sub.save()
    issued = ingest_token_create(organization=metering.org, actor=None, name="nginx")

    class Ingest:
        token = issued.token
        raw = issued.raw

        def post(self, events, *, token=None, **kwargs):
            return client.post(
                URL,
                events,
                content_type="application/json",
                headers={"Authorization": f"Bearer {token or issued.raw}"},
                **kwargs,
            )

    return Ingest()


def at(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat()


def event(metering, ikey, *, hours_ago=1.0, count=1, **extra):
    return {
        "subscription": metering.subscription.pk,
        "at": at(hours_ago),
        "count": count,
        "idempotency_key": ikey,
        **extra,
    }


def flushed_total(subscription) -> int:
    """The subscription's usage rows after a flush (which adds the ingested events)."""
    flush_all()
    return usage_total(subscription)


def statuses(response):
    assert response.status_code == 200, response.content
    return [
        (r["status"], r.get("error", {}).get("code"))
        for r in response.json()["results"]
    ]


def test_events_are_added_to_the_hourly_rows_once(metering, ingest):
    batch = [
        event(metering, "a", count=3),
        event(metering, "b", count=2),
        event(metering, "c", hours_ago=30, count=5),
    ]
    first = ingest.post(batch)
    assert first.json()["accepted"] == 3
    assert first.json()["results"][0]["subscription"] == metering.subscription.pk
    # Billing's read counts them at once; the rows have them after the next flush.
    assert (
        usage_for_period(metering.subscription, STARTED, NOW + timedelta(hours=1)) == 10
    )
    assert usage_total(metering.subscription) == 0
    assert flushed_total(metering.subscription) == 10
    # Rows are the subscription's own hours, as the gateway buckets them.
    for row in UsageRecord.objects.filter(subscription=metering.subscription):
        assert (row.hour.minute, row.hour.second) == (20, 0)
    assert (
        usage_for_period(metering.subscription, STARTED, NOW + timedelta(hours=1)) == 10
    )

    again = ingest.post(batch)  # a retry after a lost answer
    assert statuses(again) == [("duplicate", None)] * 3
    assert again.json() == {**again.json(), "accepted": 0, "duplicates": 3}
    assert flushed_total(metering.subscription) == 10
    assert UsageEvent.objects.count() == 3


def test_ingested_usage_adds_to_the_gateways(metering, ingest, gateway):
    assert (
        gateway.get("/gateway/acme/weather/v1/fast", key=metering.key).status_code
        == 200
    )
    flush_all()
    ingest.post([event(metering, "x", count=4, hours_ago=0)])
    flush_all()
    assert flushed_total(metering.subscription) == 5


def test_a_repeat_inside_a_batch_is_a_duplicate(metering, ingest):
    response = ingest.post(
        [event(metering, "k", count=2), event(metering, "k", count=2)]
    )
    assert statuses(response) == [("accepted", None), ("duplicate", None)]
    assert flushed_total(metering.subscription) == 2


def test_an_idempotency_key_reused_for_another_event_is_rejected(metering, ingest):
    ingest.post([event(metering, "k", count=2)])
    response = ingest.post([event(metering, "k", count=7), event(metering, "l")])
    assert statuses(response) == [
        ("rejected", "idempotency_key_reused"),
        ("accepted", None),
    ]
    assert flushed_total(metering.subscription) == 3


def test_an_api_key_and_api_name_the_subscription(metering, ingest):
    by_key = {"key": metering.key, "api": "weather/v1", "at": at(1), "count": 2}
    response = ingest.post(
        [
            {**by_key, "idempotency_key": "1"},
            {**by_key, "idempotency_key": "2", "api": "quotes/v1"},
            {**by_key, "idempotency_key": "3", "api": "weather"},
            {**by_key, "idempotency_key": "4", "key": "am_00000000_unknown"},
        ]
    )
    assert statuses(response) == [
        ("accepted", None),
        ("rejected", "not_subscribed"),
        ("rejected", "missing_api"),
        ("rejected", "invalid_key"),
    ]
    assert flushed_total(metering.subscription) == 2


def test_another_organizations_subscriptions_and_keys_are_refused(metering, ingest):
    outsider = metering.other_org.memberships.first().user
    globex_app = metering.make_app(outsider, org=metering.other_org)
    globex_key, _ = metering.make_key(globex_app)
    globex_sub = metering.subscribe(
        globex_app,
        metering.make_api(org=metering.other_org),
        metering.make_tier(org=metering.other_org),
        started_at=STARTED,
    )
    response = ingest.post(
        [
            {"subscription": globex_sub.pk, "at": at(1), "idempotency_key": "1"},
            {
                "key": globex_key,
                "api": "weather/v1",
                "at": at(1),
                "idempotency_key": "2",
            },
            {"subscription": 999_999, "at": at(1), "idempotency_key": "3"},
        ]
    )
    assert statuses(response) == [
        ("rejected", "unknown_subscription"),
        ("rejected", "invalid_key"),
        ("rejected", "unknown_subscription"),
    ]
    assert not UsageRecord.objects.exists()
    # Globex's own token does not reach acme's subscriptions either.
    theirs = ingest_token_create(organization=metering.other_org, actor=None)
    response = ingest.post([event(metering, "4")], token=theirs.raw)
    assert statuses(response) == [("rejected", "unknown_subscription")]
    # And idempotency keys are per organization: acme's "1" is still free.
    assert statuses(ingest.post([event(metering, "1")])) == [("accepted", None)]


def test_bad_events_get_a_code_each_and_the_good_ones_count(metering, ingest):
    sub = metering.subscription.pk
    response = ingest.post(
        [
            {"subscription": sub, "at": at(1), "count": 1},
            {"subscription": sub, "at": "2027-01-15T10:00:00", "idempotency_key": "z"},
            {"subscription": sub, "at": "yesterday", "idempotency_key": "y"},
            {"subscription": sub, "at": at(1), "count": 0, "idempotency_key": "c0"},
            {"subscription": sub, "at": at(1), "count": "3", "idempotency_key": "c1"},
            {"subscription": sub, "at": at(1), "count": True, "idempotency_key": "c2"},
            {"at": at(1), "idempotency_key": "s"},
            {"subscription": "one", "at": at(1), "idempotency_key": "s2"},
            {"subscription": sub, "at": at(-1), "idempotency_key": "f"},
            {"subscription": sub, "at": at(24 * 11), "idempotency_key": "old"},
            {"subscription": sub, "at": at(1), "idempotency_key": "x" * 201},
            "not an object",
            event(metering, "ok", count=4),
        ]
    )
    assert statuses(response) == [
        ("rejected", "missing_idempotency_key"),
        ("rejected", "bad_time"),
        ("rejected", "bad_time"),
        ("rejected", "bad_count"),
        ("rejected", "bad_count"),
        ("rejected", "bad_count"),
        ("rejected", "missing_subscription"),
        ("rejected", "bad_subscription"),
        ("rejected", "future_time"),
        ("rejected", "period_closed"),
        ("rejected", "bad_idempotency_key"),
        ("rejected", "bad_event"),
        ("accepted", None),
    ]
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 12)
    assert body["results"][1]["idempotency_key"] == "z"
    assert body["results"][1]["error"]["message"]
    assert flushed_total(metering.subscription) == 4


def test_an_invoiced_period_takes_no_more_usage(metering, ingest):
    """The period before current_period_start is closed (invoiced): refused."""
    sub = metering.subscription
    sub.current_period_start = NOW - timedelta(hours=5)
    sub.save()
    response = ingest.post([event(metering, "a", hours_ago=6), event(metering, "b")])
    assert statuses(response) == [("rejected", "period_closed"), ("accepted", None)]


def test_a_retry_after_the_period_was_invoiced_is_still_a_duplicate(metering, ingest):
    """Stored events are duplicates even when they would now be refused; a new
    event of the closed period is refused, another key's new event accepted."""
    sub = metering.subscription
    first = [event(metering, "a", hours_ago=6), event(metering, "b", hours_ago=6)]
    assert statuses(ingest.post(first)) == [("accepted", None)] * 2
    sub.current_period_start = NOW - timedelta(hours=5)  # the billing run closed it
    sub.save()
    again = ingest.post(
        [*first, event(metering, "c", hours_ago=6), event(metering, "d", hours_ago=1)]
    )
    assert statuses(again) == [
        ("duplicate", None),
        ("duplicate", None),
        ("rejected", "period_closed"),
        ("accepted", None),
    ]
    changed = ingest.post([event(metering, "a", hours_ago=6, count=9)])
    assert statuses(changed) == [("rejected", "idempotency_key_reused")]
    assert flushed_total(sub) == 3


@pytest.mark.parametrize(
    ("state", "code"),
    [
        (SubscriptionState.PENDING_PAYMENT, "subscription_not_started"),
        (SubscriptionState.CANCELLED, "subscription_cancelled"),
    ],
)
def test_subscriptions_never_served_or_cancelled_take_no_usage(
    metering, ingest, state, code
):
    metering.subscription.state = state
    metering.subscription.save()
    assert statuses(ingest.post([event(metering, "a")])) == [("rejected", code)]


def test_ingested_usage_sends_quota_alerts(metering, ingest):
    metering.set_tier(quota_limit=10, quota_unit="day")
    ingest.post([event(metering, "a", hours_ago=0, count=8)])
    assert quota_alerts_send(now=NOW).sent == 1
    assert "80 %" in mail.outbox[0].subject


def test_the_token_is_required_and_checked(metering, ingest, client):
    batch = [event(metering, "a")]
    missing = client.post(URL, batch, content_type="application/json")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "missing_token"
    assert "Bearer" in missing.headers["WWW-Authenticate"]
    wrong = ingest.post(batch, token="ing_00000000_nope")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_token")
    ingest_token_revoke(token=ingest.token)
    revoked = ingest.post(batch)
    assert (revoked.status_code, revoked.json()["error"]["code"]) == (
        401,
        "invalid_token",
    )
    assert not UsageEvent.objects.exists()


def test_a_malformed_request_is_400(metering, ingest, client):
    headers = {"Authorization": f"Bearer {ingest.raw}"}

    def post(body):
        return client.post(URL, body, content_type="application/json", headers=headers)

    assert post("{not json").json()["error"]["code"] == "bad_json"
    assert post([]).json()["error"]["code"] == "bad_batch"
    assert post({"events": "x"}).json()["error"]["code"] == "bad_batch"
    too_many = [event(metering, str(i)) for i in range(1001)]
    assert post(too_many).json()["error"]["code"] == "too_many_events"
    assert post({"events": [event(metering, "w")]}).status_code == 200  # wrapped
    get = client.get(URL, headers=headers)
    assert (get.status_code, get.json()["error"]["code"]) == (405, "method_not_allowed")


def test_the_same_batch_posted_at_once_twice_counts_once(metering, ingest):
    """Two posts of one batch race (PostgreSQL): the second waits for the first's
    subscription locks and then sees its events as duplicates (or, with other
    subscriptions, fails on the unique key and is redone): counted once."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    from gateway.ingest import ingest_events

    batch = [event(metering, str(i), count=2) for i in range(50)]

    def post():
        try:
            return ingest_events(token=ingest.token, events=batch).as_json()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: post(), range(2)))
    assert sorted((a["accepted"], a["duplicates"]) for a in answers) == [
        (0, 50),
        (50, 0),
    ]
    assert flushed_total(metering.subscription) == 100


def test_two_batches_sharing_keys_in_opposite_orders_both_get_an_answer(
    metering, ingest
):
    """Two batches for two subscriptions (so neither waits for the other's
    subscription lock) that reuse the same idempotency keys, one in the reverse
    order of the other (PostgreSQL): each key is stored once, the other batch's
    events with it are refused as reused keys, and neither batch fails (a deadlock
    on the unique key would be a 500)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    from gateway.ingest import ingest_events

    other = metering.subscribe(
        metering.make_app(name="Other app"), metering.api, metering.tier
    )
    other.started_at = other.current_period_start = STARTED
    other.save()
    keys = [f"k{i}" for i in range(1000)]
    first = [event(metering, key) for key in keys]
    second = [
        {**event(metering, key), "subscription": other.pk} for key in reversed(keys)
    ]
    for _round in range(3):
        UsageEvent.objects.all().delete()
        start = threading.Barrier(2)

        def post(batch, start=start):
            try:
                start.wait()
                return ingest_events(token=ingest.token, events=batch).as_json()
            finally:
                connections.close_all()

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(post, [first, second]))
        assert sorted((a["accepted"], a["rejected"]) for a in answers) == [
            (0, len(keys)),
            (len(keys), 0),
        ]
        assert UsageEvent.objects.count() == len(keys)


def test_a_nul_in_an_idempotency_key_is_refused_per_event(metering, ingest):
    response = ingest.post(
        [event(metering, "a\x00b"), event(metering, "tab\tkey"), event(metering, "ok")]
    )

    assert statuses(response) == [
        ("rejected", "bad_idempotency_key"),
        ("rejected", "bad_idempotency_key"),
        ("accepted", None),
    ]
    assert list(UsageEvent.objects.values_list("idempotency_key", flat=True)) == ["ok"]


def test_keys_with_quotes_commas_and_backslashes_are_stored_as_sent(metering, ingest):
    keys = ["a,b", '"quoted"', "back\\slash", "\\N", "ünï €", "x" * 200]
    batch = [event(metering, key) for key in keys]

    assert statuses(ingest.post(batch)) == [("accepted", None)] * len(keys)
    assert sorted(UsageEvent.objects.values_list("idempotency_key", flat=True)) == (
        sorted(keys)
    )
    assert statuses(ingest.post(batch)) == [("duplicate", None)] * len(keys)
    assert flushed_total(metering.subscription) == len(keys)


@pytest.mark.parametrize(
    "body",
    ["[" * 100_000 + "]" * 100_000, '{"events": ' + "[" * 100 + "]" * 100 + "}"],
)
def test_a_deeply_nested_body_is_400_too_deep(metering, ingest, client, body):
    response = client.post(
        URL,
        body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {ingest.raw}"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_deep"
    assert not UsageEvent.objects.exists()


def test_a_body_that_is_not_utf8_is_bad_json(metering, ingest, client):
    response = client.post(
        URL,
        b"\xff\xfe[]",
        content_type="application/json",
        headers={"Authorization": f"Bearer {ingest.raw}"},
    )

    assert (response.status_code, response.json()["error"]["code"]) == (
        400,
        "bad_json",
    )


def post_text(client, ingest, text: str):
    return client.post(
        URL,
        text,
        content_type="application/json",
        headers={"Authorization": f"Bearer {ingest.raw}"},
    )


def test_text_that_cannot_be_stored_or_ids_out_of_range_are_refused_per_event(
    metering, ingest, client
):
    """A lone surrogate (\\ud800, which JSON can spell but UTF-8 cannot) in a key,
    and a subscription id past the database's bigint: refused with a code, the
    rest of the batch stored (these were 500s)."""
    sub = metering.subscription.pk
    good = event(metering, "ok")
    text = (
        f'[{{"subscription": {sub}, "at": "{at(1)}", "idempotency_key": "a\\ud800"}},'
        f' {{"key": "k\\udfff", "api": "x/v1", "at": "{at(1)}", '
        '"idempotency_key": "k"},'
        f' {{"subscription": {2**64}, "at": "{at(1)}", "idempotency_key": "big"}},'
        f' {{"subscription": -1, "at": "{at(1)}", "idempotency_key": "neg"}},'
        f' {{"subscription": {sub}, "at": "{at(1)}", "idempotency_key": "n", '
        '"quantity": NaN},'
        f" {json.dumps(good)}]"
    )

    response = post_text(client, ingest, text)

    assert statuses(response) == [
        ("rejected", "bad_idempotency_key"),
        ("rejected", "invalid_key"),
        ("rejected", "unknown_subscription"),
        ("rejected", "unknown_subscription"),
        ("rejected", "bad_count"),
        ("accepted", None),
    ]
    # The refused key is echoed as sent (JSON escapes the surrogate).
    assert response.json()["results"][0]["idempotency_key"] == "a\ud800"
    assert list(UsageEvent.objects.values_list("idempotency_key", flat=True)) == ["ok"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('{"events": [{"a": ' + "[" * 70 + "]" * 70 + "}]}", "too_deep"),
        # 64 levels are allowed (then: no events), 65 are not.
        ('{"events": [], "x": ' + "[" * 63 + "]" * 63 + "}", "bad_batch"),
        ('{"events": [], "x": ' + "[" * 64 + "]" * 64 + "}", "too_deep"),
        ('[{"idempotency_key": "x"}] trailing', "bad_json"),
        ('{"events": [1, 2', "bad_json"),
    ],
)
def test_the_body_is_judged_as_before_whichever_parser_reads_it(
    metering, ingest, client, text, code
):
    """orjson reads the body, the nesting is checked on what it parsed; what it
    refuses goes to the json module: same codes either way."""
    response = post_text(client, ingest, text)

    assert (response.status_code, response.json()["error"]["code"]) == (400, code)


def test_a_batch_nested_within_the_limit_is_judged_event_by_event(
    metering, ingest, client
):
    nested = {"subscription": metering.subscription.pk, "at": at(1),
              "idempotency_key": "deep", "meter": [[[[["tokens"]]]]]}  # fmt: skip

    response = post_text(client, ingest, json.dumps([nested, event(metering, "ok")]))

    assert statuses(response) == [("rejected", "bad_meter"), ("accepted", None)]
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"


def test_every_form_of_time_is_stored_as_the_instant_it_names(metering, ingest):
    """Times in the common ISO 8601 form are written to the database as sent,
    others in UTC: both store the instant Python read, so a retry finds each event
    the same (duplicates, not reused keys)."""
    t = (NOW - timedelta(hours=2)).replace(microsecond=123456)
    forms = [
        t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        t.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"),
        t.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat(),
        t.astimezone(timezone(timedelta(hours=-3))).isoformat(),
        t.strftime("%Y-%m-%dT%H:%M:%S.1Z"),
        t.strftime("%Y-%m-%dT%H:%MZ"),
        t.strftime("%Y-%m-%d %H:%M:%S+00:00"),  # a space, not "T"
        t.strftime("%Y%m%dT%H%M%SZ"),  # the basic format
        t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "789Z",  # past µs: truncated
        t.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00:00"),
        # Offsets Python reads and PostgreSQL does not (past ±15:59): were 500s.
        t.astimezone(timezone(timedelta(hours=16))).isoformat(),
        t.astimezone(timezone(-timedelta(hours=23, minutes=59))).isoformat(),
    ]
    batch = [event(metering, f"t{i}", at=form) for i, form in enumerate(forms)]

    assert statuses(ingest.post(batch)) == [("accepted", None)] * len(forms)
    stored = dict(UsageEvent.objects.values_list("idempotency_key", "at"))
    assert [stored[f"t{i}"] for i in range(len(forms))] == [
        datetime.fromisoformat(form.replace(" ", "T")) for form in forms
    ]
    assert statuses(ingest.post(batch)) == [("duplicate", None)] * len(forms)


def test_keys_differing_in_case_or_accents_are_different_keys(metering, ingest):
    """The keys' unique index compares bytes (collation "C" on PostgreSQL): keys a
    locale might sort together stay distinct, and each is once per organization."""
    from django.db import connection

    keys = ["abc", "ABC", "\u00e9", "e\u0301", "a b", "a  b"]  # é: NFC, NFD
    batch = [event(metering, key) for key in keys]

    assert statuses(ingest.post(batch)) == [("accepted", None)] * len(keys)
    assert statuses(ingest.post(batch)) == [("duplicate", None)] * len(keys)
    assert UsageEvent.objects.count() == len(keys)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT collation_name FROM information_schema.columns WHERE "
                "table_name = 'gateway_usageevent' AND column_name = 'idempotency_key'"
            )
            assert cursor.fetchone()[0] == "C"
