"""No body gives a 500 on apimon's JSON endpoints, and a refused one stores nothing:
the usage ingest API (with a valid ingest token) and the Stripe webhook (correctly
signed, so the body itself is what is tested). Bodies are any JSON (hostile strings
and numbers, deep nesting), objects shaped like what each endpoint reads with
hostile values in every field, and bytes that are not JSON at all."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import stripe
from django.conf import settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from billing.webhooks import HANDLERS
from gateway.models import UsageEvent
from store.models import Subscription
from tests.fuzz.conftest import EXAMPLES, count_changes, row_counts
from tests.fuzz.strategies import json_values, text

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC)
# Each JSON endpoint is one route: give it the examples of a handful of routes.
JSON_EXAMPLES = EXAMPLES * 10


def post_json(client, url: str, body: bytes, headers: dict):
    """POST `body`: never a 5xx, and a refusal (4xx) changes no row."""
    before = row_counts()
    response = client.post(url, body, content_type="application/json", headers=headers)
    assert response.status_code < 500, body[:300]
    if response.status_code >= 400:
        assert count_changes(before, row_counts()) == {}
    return response


def deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


raw_bodies = st.one_of(
    st.binary(max_size=100),
    st.integers(min_value=1, max_value=200_000).map(deep),
    st.sampled_from([b"", b"null", b'"x"', b"1e999", b"[]", b"{}", b"\xff\xfe"]),
)


def times():
    return st.one_of(
        st.integers(min_value=-400 * 24, max_value=48).map(
            lambda hours: (NOW - timedelta(hours=hours)).isoformat()
        ),
        text,
    )


def ingest_events(fuzz_world):
    sub = Subscription.objects.filter(organization=fuzz_world.world.org).first()
    ids = st.sampled_from([sub.pk, 0, -1, 2**63, 10**30, True, None])
    event = st.fixed_dictionaries(
        {},
        optional={
            "subscription": st.one_of(ids, text, json_values()),
            "key": st.one_of(text, st.just("am_nope")),
            "api": st.one_of(st.just("weather/v1"), text),
            "at": times(),
            "count": st.one_of(
                st.integers(min_value=-(2**70), max_value=2**70), text, st.none()
            ),
            "idempotency_key": st.one_of(text, st.integers()),
        },
    )
    batch = st.lists(st.one_of(event, json_values()), max_size=6)
    return st.one_of(
        batch.map(lambda b: json.dumps(b).encode()),
        batch.map(lambda b: json.dumps({"events": b}).encode()),
        json_values().map(lambda v: json.dumps(v).encode()),
        raw_bodies,
    )


@pytest.mark.redis
def test_the_ingest_api_never_answers_500(fuzz_world, client):
    bodies = ingest_events(fuzz_world)
    headers = {"Authorization": f"Bearer {fuzz_world.ingest_token}"}

    @hypothesis_settings(max_examples=JSON_EXAMPLES)
    @given(body=bodies)
    def post(body):
        with fuzz_world.example():
            events = UsageEvent.objects.count()
            response = post_json(client, "/api/usage/events", body, headers)
            if response.status_code >= 400:
                assert response.json()["error"]["code"]
            else:
                answer = response.json()
                assert UsageEvent.objects.count() == events + answer["accepted"]

    post()


def sign(body: bytes) -> str:
    timestamp = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(
        f"{timestamp}.{body.decode('utf-8', 'replace')}", settings.STRIPE_WEBHOOK_SECRET
    )
    return f"t={timestamp},v1={signature}"


def stripe_events(fuzz_world):
    event = st.fixed_dictionaries(
        {
            "id": st.one_of(st.text(min_size=1, max_size=30), text, st.integers()),
            "type": st.one_of(st.sampled_from(sorted(HANDLERS)), text),
        },
        optional={
            "object": st.just("event"),
            "account": st.one_of(
                st.sampled_from([fuzz_world.account, "acct_nope", None]), text
            ),
            "api_version": st.one_of(st.just("2026-10-28.endive"), text),
            "livemode": st.one_of(st.booleans(), text),
            "created": st.one_of(st.integers(), text),
            "data": st.one_of(
                st.fixed_dictionaries({"object": json_values()}), json_values()
            ),
        },
    )
    return st.one_of(
        event.map(lambda e: json.dumps(e).encode()),
        json_values().map(lambda v: json.dumps(v).encode()),
        raw_bodies,
    )


def test_the_stripe_webhook_never_answers_500(fuzz_world, client):
    from billing.models import WebhookEvent

    bodies = stripe_events(fuzz_world)

    @hypothesis_settings(max_examples=JSON_EXAMPLES)
    @given(body=bodies)
    def post(body):
        with fuzz_world.example():
            stored = WebhookEvent.objects.count()
            headers = {"Stripe-Signature": sign(body)}
            response = post_json(client, "/billing/stripe/webhook/", body, headers)
            if response.status_code < 400:
                assert WebhookEvent.objects.count() == stored + 1

    post()
