"""docker-compose.yml describes a production-like deployment whose commands exist."""

import importlib
import os
import re
import subprocess

import yaml

from apimon.celery import app as celery_app
from tests.helpers import ROOT, run_python


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_it_has_every_service_with_a_health_check():
    services = compose()["services"]
    assert set(services) >= {"web", "worker", "beat", "postgres", "redis"}
    for name, service in services.items():
        assert "healthcheck" in service, name


def test_the_app_services_point_at_postgres_and_redis():
    for name in ("web", "worker", "beat"):
        environment = compose()["services"][name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert environment["REDIS_URL"].startswith("redis://")
        assert environment["DEBUG"] == "0"


def test_the_commands_name_modules_that_exist():
    services = compose()["services"]
    web = services["web"]["command"]
    module, attr = re.search(r"gunicorn (\S+):(\S+)", web).groups()
    assert hasattr(importlib.import_module(module), attr)
    assert "uvicorn_worker.UvicornWorker" in web
    importlib.import_module("uvicorn_worker")
    assert "manage.py migrate" in web
    for name in ("worker", "beat"):
        assert re.search(r"celery -A apimon (worker|beat)", services[name]["command"])
    assert celery_app.main == "apimon"


def test_the_image_is_built_from_the_project():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements.txt" in dockerfile
    assert compose()["x-app"]["build"] == "."


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            values[name] = value
    return values


def boot(environ: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO", "DEBUG", "STRIPE_", "SECURE_", "SECRET_KEY"))
        and k not in {"ALLOWED_HOSTS", "SITE_URL", "DATABASE_URL", "REDIS_URL"}
    }
    clean.update(environ, DJANGO_SETTINGS_MODULE="apimon.settings")
    return run_python("-c", "import django; django.setup()", env=clean)


def test_env_example_stops_until_a_stripe_is_chosen_then_starts():
    web = compose()["services"]["web"]["environment"]
    environ = {**env_example(), "DEBUG": web["DEBUG"]}
    stopped = boot(environ)
    assert "STRIPE_SECRET_KEY must be set when DEBUG is off" in stopped.stderr
    commented = (ROOT / ".env.example").read_text()
    # The emulator's block: the commented assignments after "# Or the bundled emulator".
    block = commented.split("# Or the bundled emulator", 1)[1]
    emulator = dict(
        line[2:].split("=", 1)
        for line in block.splitlines()
        if re.fullmatch(r"# STRIPE_\w+=\S+", line)
    )
    assert set(emulator) == {
        "STRIPE_EMULATOR_URL",
        "STRIPE_EMULATOR_CONTROL_SECRET",
        "STRIPE_WEBHOOK_SECRET",
    }
    started = boot({**environ, **emulator})
    assert started.returncode == 0, started.stderr
    # Without either secret the emulator is refused outside DEBUG.
    for name in ("STRIPE_EMULATOR_CONTROL_SECRET", "STRIPE_WEBHOOK_SECRET"):
        partial = {k: v for k, v in emulator.items() if k != name}
        refused = boot({**environ, **partial})
        assert refused.returncode != 0 and f"{name} must be set" in refused.stderr


def test_the_web_and_beat_health_checks_ask_for_readiness():
    services = compose()["services"]
    web = " ".join(services["web"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/readyz" in web
    assert services["beat"]["healthcheck"]["test"] == [
        "CMD",
        "python",
        "manage.py",
        "readyz",
    ]
    for name in ("web", "beat"):
        # The jobs' first heartbeat comes a minute after beat starts.
        assert services[name]["healthcheck"]["start_period"] == "120s"
