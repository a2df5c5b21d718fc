"""The emulator reads its variables like apimon does: `NAME_FILE` names a file holding
the value when `NAME` is unset, and a value it cannot use names the variable."""

from __future__ import annotations

import os

import pytest

from stripe_emulator.config import ConfigError, EmulatorConfig
from tests.helpers import run_python


@pytest.fixture
def environ(monkeypatch):
    for name in list(os.environ):
        if name.startswith("STRIPE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_the_webhook_secret_and_client_id_can_come_from_files(environ, tmp_path):
    (tmp_path / "whsec").write_text("whsec_from_a_file\n")
    (tmp_path / "client").write_text("ca_from_a_file")
    environ.setenv("STRIPE_WEBHOOK_SECRET_FILE", str(tmp_path / "whsec"))
    environ.setenv("STRIPE_CONNECT_CLIENT_ID_FILE", str(tmp_path / "client"))
    config = EmulatorConfig.from_env()
    assert config.webhook_secret == "whsec_from_a_file"
    assert config.client_id == "ca_from_a_file"


def test_the_variable_wins_over_its_file_and_options_over_both(environ, tmp_path):
    (tmp_path / "whsec").write_text("whsec_from_a_file")
    environ.setenv("STRIPE_WEBHOOK_SECRET_FILE", str(tmp_path / "whsec"))
    environ.setenv("STRIPE_WEBHOOK_SECRET", "whsec_from_the_variable")
    assert EmulatorConfig.from_env().webhook_secret == "whsec_from_the_variable"
    config = EmulatorConfig.from_env(webhook_secret="whsec_option")
    assert config.webhook_secret == "whsec_option"


def test_without_either_the_default_secret_is_apimons_default(environ):
    assert EmulatorConfig.from_env().webhook_secret == "whsec_emulator_apimon"


def test_an_unreadable_file_names_the_variable(environ, tmp_path):
    environ.setenv("STRIPE_WEBHOOK_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(
        ConfigError, match=r"STRIPE_WEBHOOK_SECRET_FILE=.* cannot be read"
    ):
        EmulatorConfig.from_env()


@pytest.mark.parametrize("raw", ["fast", "nan", "inf", "0", "-2"])
def test_a_bad_time_scale_names_the_variable(environ, raw):
    environ.setenv("STRIPE_EMULATOR_TIME_SCALE", raw)
    with pytest.raises(
        ConfigError, match=r"STRIPE_EMULATOR_TIME_SCALE=.* not a positive"
    ):
        EmulatorConfig.from_env()
    # An explicit --time-scale replaces the variable, which is then not read.
    assert EmulatorConfig.from_env(time_scale=60.0).time_scale == 60.0


def test_the_emulator_process_stops_with_the_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    env["STRIPE_WEBHOOK_SECRET_FILE"] = str(tmp_path / "missing")
    result = run_python("-m", "stripe_emulator", "--db", str(tmp_path / "db"), env=env)
    assert result.returncode != 0
    assert "STRIPE_WEBHOOK_SECRET_FILE=" in result.stderr
    assert "Traceback" not in result.stderr
