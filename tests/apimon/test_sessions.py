"""Sessions are Django's database sessions, read in plain SQL (apimon/sessions.py):
a signed-in visitor stays signed in, an expired or deleted session signs out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from apimon.sessions import SessionStore

pytestmark = pytest.mark.django_db


def test_a_saved_session_reads_back_and_an_unknown_key_reads_empty():
    store = SessionStore()
    store["cart"] = {"n": 3}
    store.save()
    again = SessionStore(store.session_key)
    assert again["cart"] == {"n": 3}
    unknown = SessionStore("x" * 32)
    assert unknown.load() == {}
    assert unknown.session_key is None  # a new one is made if it saves
    assert SessionStore(None).load() == {}


def test_an_expired_session_reads_empty():
    store = SessionStore()
    store["a"] = 1
    store.save()
    Session.objects.filter(session_key=store.session_key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    assert SessionStore(store.session_key).load() == {}


def test_a_signed_in_page_stays_signed_in_until_the_session_is_deleted(
    world, client_for
):
    client = client_for(world.publisher)
    assert client.get("/home/").status_code == 200
    Session.objects.all().delete()
    response = client.get("/home/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
