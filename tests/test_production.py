"""The production image's web process, as far as it can be run without docker:
static files collected the way the Dockerfile does, then pages and the compose health
check served with DEBUG=0 by apimon's own settings in a child process."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.helpers import ROOT, run_python

STRONG_KEY = "k3y-" + "x7Qp9" * 12


def dockerfile_runs() -> list[str]:
    """The Dockerfile's RUN commands, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line[4:].strip() for line in text.splitlines() if line.startswith("RUN ")]


def collectstatic_environment() -> dict[str, str]:
    """The VAR=value assignments the Dockerfile's collectstatic step runs with."""
    (command,) = [run for run in dockerfile_runs() if "collectstatic" in run]
    words = shlex.split(command)
    assignments = {}
    for word in words:
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", word):
            break
        name, value = word.split("=", 1)
        assignments[name] = value
    assert words[len(assignments) :][:3] == ["python", "manage.py", "collectstatic"]
    return assignments


def child_environment(**environ: str) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO", "DEBUG", "STRIPE_", "SECURE_"))
        and k
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "SECRET_KEY",
            "ALLOWED_HOSTS",
            "STATIC_ROOT",
        }
    }
    clean.update(environ, DJANGO_SETTINGS_MODULE="apimon.settings")
    return clean


# What `.env.example` gives the running container, plus compose's DEBUG=0.
RUNTIME = {
    "DEBUG": "0",
    "SECRET_KEY": STRONG_KEY,
    "ALLOWED_HOSTS": "apimon.example.com",
    "SECURE_PROXY_SSL_HEADER": "1",
    "STRIPE_EMULATOR_URL": "http://127.0.0.1:12111",
    "STRIPE_EMULATOR_CONTROL_SECRET": "operator-chosen-" + "s3cr3t" * 4,
    "STRIPE_WEBHOOK_SECRET": "whsec_operator_" + "s3cr3t" * 4,
}

# Requests through Django's test client; prints "status<TAB>content-type<TAB>body".
CLIENT = """
import sys, django
django.setup()
from django.test import Client
for line in sys.stdin.read().splitlines():
    path, host, proto = line.split()
    extra = {"HTTP_X_FORWARDED_PROTO": proto} if proto != "-" else {}
    response = Client(raise_request_exception=False).get(path, HTTP_HOST=host, **extra)
    body = b"".join(response) if response.streaming else response.content
    print(response.status_code, response.get("Location", "-"), body[:4000].hex())
"""


def get_all(requests: list[tuple[str, str, str]], **environ: str) -> list[tuple]:
    result = run_python(
        "-c",
        CLIENT,
        env=child_environment(**environ),
        input="\n".join(" ".join(request) for request in requests),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    answers = []
    for line in result.stdout.splitlines():
        status, location, body = line.split(" ")
        answers.append((int(status), location, bytes.fromhex(body).decode("latin-1")))
    return answers


def test_the_image_collects_static_files_with_debug_off():
    assert collectstatic_environment()["DEBUG"] == "0"


@pytest.fixture(scope="module")
def static_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("staticfiles")
    result = run_python(
        "manage.py",
        "collectstatic",
        "--no-input",
        env=child_environment(**collectstatic_environment(), STATIC_ROOT=str(root)),
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def test_collectstatic_writes_the_manifest(static_root):
    manifest = json.loads((static_root / "staticfiles.json").read_text())
    assert re.fullmatch(
        r"css/apimon\.[0-9a-f]{12}\.css", manifest["paths"]["css/apimon.css"]
    )


def test_the_landing_page_renders_with_hashed_static_urls(static_root, tmp_path):
    hashed = json.loads((static_root / "staticfiles.json").read_text())["paths"][
        "css/apimon.css"
    ]
    (page, stylesheet, unhashed) = get_all(
        [
            ("/", "apimon.example.com", "https"),
            (f"/static/{hashed}", "apimon.example.com", "https"),
            ("/static/css/apimon.css", "apimon.example.com", "https"),
        ],
        **RUNTIME,
        STATIC_ROOT=str(static_root),
        APIMON_VAR_DIR=str(tmp_path),
    )
    assert page[0] == 200, page
    assert f'href="/static/{hashed}"' in page[2]
    assert stylesheet[0] == 200
    # WhiteNoise serves the collected files, the original name as well.
    assert unhashed[0] == 200


def compose_health_url() -> str:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    check = " ".join(compose["services"]["web"]["healthcheck"]["test"])
    (url,) = re.findall(r"https?://[^'\" )]+", check)
    return url


def test_the_compose_health_check_gets_200_behind_host_validation_and_https(tmp_path):
    url = urlsplit(compose_health_url())
    assert url.scheme == "http" and url.netloc == "127.0.0.1:8000"
    assert url.path == "/readyz"
    environ = {**RUNTIME, "SECURE_SSL_REDIRECT": "1", "APIMON_VAR_DIR": str(tmp_path)}
    # The background jobs have beaten (what beat schedules and a worker runs), in the
    # cache this deployment shares (files under APIMON_VAR_DIR without Redis).
    beat = run_python(
        "-c",
        "import django; django.setup(); from apimon.tasks import heartbeat; heartbeat()",
        env=child_environment(**environ),
    )
    assert beat.returncode == 0, beat.stderr
    health, health_public_host, live, bad_host, good_host_http = get_all(
        [
            (url.path, url.netloc, "-"),
            (url.path, "apimon.example.com", "-"),
            ("/healthz", url.netloc, "-"),
            ("/", url.netloc, "-"),
            ("/accounts/login/", "apimon.example.com", "-"),
        ],
        **environ,
    )
    assert health[0] == 200 and json.loads(health[2])["status"] == "ok", health
    assert health_public_host[0] == 200
    assert live[:1] == (200,) and live[2] == "ok"
    # Every other path still validates the host and redirects plain HTTP to HTTPS.
    assert bad_host[0] == 400
    assert good_host_http[:2] == (301, "https://apimon.example.com/accounts/login/")


def test_error_pages_use_apimons_layout_with_debug_off(static_root, tmp_path):
    # The child's database is an empty SQLite file (no migrations): a tenant page
    # fails with "no such table", so the 500 page is rendered without a database.
    not_found, server_error, bad_host = get_all(
        [
            ("/no/such/page/", "apimon.example.com", "https"),
            ("/t/acme/store/", "apimon.example.com", "https"),
            ("/", "attacker.example", "https"),
        ],
        **RUNTIME,
        STATIC_ROOT=str(static_root),
        APIMON_VAR_DIR=str(tmp_path),
    )
    assert not_found[0] == 404
    assert "Page not found" in not_found[2] and '<nav class="navbar"' in not_found[2]
    assert server_error[0] == 500
    assert "Something went wrong on our side" in server_error[2]
    assert '<nav class="navbar"' in server_error[2]
    assert bad_host[0] == 400
    assert "This request could not be understood" in bad_host[2]
