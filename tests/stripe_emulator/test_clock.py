"""A new emulator may start its clock in the past (as a Stripe test clock starts at
its `frozen_time`), so a history can be written with the times it happened at;
once it holds anything, its clock only moves forward."""

from __future__ import annotations

import time

import pytest

from stripe_emulator.config import EmulatorConfig
from stripe_emulator.emulator import Emulator
from stripe_emulator.testing import oauth_connect

DAY = 86400


@pytest.fixture
def emulator(tmp_path):
    emulator = Emulator(
        EmulatorConfig(db_path=str(tmp_path / "state.sqlite3"), webhook_url=None)
    )
    yield emulator
    emulator.close()


def test_a_new_emulator_starts_its_clock_in_the_past_and_keeps_it(emulator, tmp_path):
    assert emulator.is_new()
    past = int(time.time()) - 60 * DAY
    emulator.start_clock_at(past)
    assert abs(emulator.now() - past) <= 1
    oauth_connect(emulator)  # an account connected then carries that time
    accounts = emulator.store.list("account", account=None)
    assert sorted(abs(a["created"] - past) <= 1 for a in accounts) == [False, True]
    emulator.advance(30 * DAY)
    assert abs(emulator.now() - (past + 30 * DAY)) <= 1
    emulator.close()
    again = Emulator(EmulatorConfig(db_path=str(tmp_path / "state.sqlite3")))
    try:  # a restarted emulator keeps the time it had reached
        assert abs(again.now() - (past + 30 * DAY)) <= 1
        assert not again.is_new()
    finally:
        again.close()


def test_once_it_holds_objects_its_clock_does_not_go_back(emulator):
    oauth_connect(emulator)
    assert not emulator.is_new()
    now = emulator.now()
    with pytest.raises(ValueError, match="only moves forward"):
        emulator.start_clock_at(now - DAY)
    assert emulator.now() >= now
