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
        if name.startswith("STRIPE_") or name == "DEBUG":
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


# --- outside DEBUG the emulator is closed ---------------------------------------------

CONTROL = "operator-chosen-" + "s3cr3t" * 4


def test_in_development_it_is_open_with_the_public_defaults(environ):
    environ.delenv("DEBUG", raising=False)
    config = EmulatorConfig.from_env()
    assert not config.closed and config.platform_key is None


def test_outside_debug_it_needs_a_control_secret(environ):
    environ.setenv("DEBUG", "0")
    environ.setenv("STRIPE_WEBHOOK_SECRET", "whsec_operator_secret")
    with pytest.raises(ConfigError, match="STRIPE_EMULATOR_CONTROL_SECRET must be set"):
        EmulatorConfig.from_env()


@pytest.mark.parametrize("secret", [None, "whsec_emulator_apimon", ""])
def test_outside_debug_the_webhook_secret_has_no_public_default(environ, secret):
    environ.setenv("DEBUG", "0")
    environ.setenv("STRIPE_EMULATOR_CONTROL_SECRET", CONTROL)
    if secret is not None:
        environ.setenv("STRIPE_WEBHOOK_SECRET", secret)
    with pytest.raises(ConfigError, match="STRIPE_WEBHOOK_SECRET must be set"):
        EmulatorConfig.from_env()


def test_outside_debug_with_both_secrets_it_is_closed(environ, tmp_path):
    environ.setenv("DEBUG", "0")
    (tmp_path / "control").write_text(CONTROL + "\n")
    environ.setenv("STRIPE_EMULATOR_CONTROL_SECRET_FILE", str(tmp_path / "control"))
    environ.setenv("STRIPE_WEBHOOK_SECRET", "whsec_operator_secret")
    config = EmulatorConfig.from_env()
    assert config.closed and config.platform_key == f"sk_test_{CONTROL}"


@pytest.mark.parametrize("secret", ["short", "x" * 30 + " y", "ä" * 30])
def test_a_weak_control_secret_names_the_variable(environ, secret):
    environ.setenv("STRIPE_EMULATOR_CONTROL_SECRET", secret)
    with pytest.raises(ConfigError, match="STRIPE_EMULATOR_CONTROL_SECRET must be at"):
        EmulatorConfig.from_env()


def test_a_bad_debug_value_names_the_variable(environ):
    environ.setenv("DEBUG", "maybe")
    with pytest.raises(ConfigError, match="DEBUG='maybe' is not a boolean"):
        EmulatorConfig.from_env()


def test_the_process_refuses_to_start_open_outside_debug(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    env["DEBUG"] = "0"
    result = run_python("-m", "stripe_emulator", "--db", str(tmp_path / "db"), env=env)
    assert result.returncode != 0
    assert "STRIPE_EMULATOR_CONTROL_SECRET must be set" in result.stderr
    assert "Traceback" not in result.stderr
