"""The nginx `auth_request` example of docs/metering.md, run for real: nginx in front
of the sample backend asks the whole ASGI application (under uvicorn) through the
verify endpoint. Skipped where nginx is not installed (`apt-get install nginx`)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from gateway.entitlements import invalidate
from tests.gateway.conftest import _free_port, flush_all, usage_total
from tests.gateway.test_uvicorn import server  # noqa: F401  (the fixture)

NGINX = shutil.which("nginx") or (
    "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
)
if NGINX is None and os.environ.get("APIMON_REQUIRE_NGINX") == "1":
    raise RuntimeError("APIMON_REQUIRE_NGINX=1 but nginx is not installed")
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")


def documented_config() -> str:
    text = (Path(settings.BASE_DIR) / "docs" / "metering.md").read_text()
    return re.search(r"```nginx\n(.*?)```", text, re.S).group(1)


@pytest.fixture
def nginx(server, backend_url, tmp_path):  # noqa: F811
    """nginx with the documented server block; its upstreams point at this test's
    uvicorn (apimon) and sample backend. Returns nginx's base URL."""
    port = _free_port()
    apimon_port = server.rsplit(":", 1)[1]
    backend_port = backend_url.rsplit(":", 1)[1]
    block = documented_config()
    for old, new in [
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{apimon_port};"),
        ("server 10.0.0.5:8080;", f"server 127.0.0.1:{backend_port};"),
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        # The sample backend serves the test endpoints under /_bench/.
        ("proxy_pass http://weather/;", "proxy_pass http://weather/_bench/;"),
    ]:
        assert old in block
        block = block.replace(old, new)
    temp = "".join(
        f"{kind}_temp_path {tmp_path}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"worker_processes 1;\nerror_log {tmp_path}/error.log;\n"
        f"pid {tmp_path}/nginx.pid;\nevents {{}}\n"
        f"http {{\naccess_log off;\n{temp}{block}\n}}\n"
    )
    process = subprocess.Popen(
        [NGINX, "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.get(url + "/", timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"nginx did not start: {process.stderr.read().decode()}")
            time.sleep(0.05)
    yield url
    process.send_signal(signal.SIGQUIT)
    process.wait(10)


def test_nginx_auth_request_allows_counts_and_refuses(metering, nginx):
    api = f"{nginx}/acme/weather/v1"
    key = {"X-API-Key": metering.key}

    echoed = httpx.get(f"{api}/echo?x=1", headers=key).json()
    headers = {name.lower(): value for name, value in echoed["headers"]}
    assert echoed["path"] == "/_bench/echo"
    assert headers["x-apimon-subscription"] == str(metering.subscription.pk)
    assert "x-api-key" not in headers  # the backend never sees the key
    assert httpx.get(f"{api}/fast", headers=key).status_code == 200

    assert httpx.get(f"{api}/fast").status_code == 401
    bad = httpx.get(f"{api}/fast", headers={"X-API-Key": "am_00000000_unknown"})
    assert bad.status_code == 401

    metering.set_tier(rate_limit=2, rate_unit="minute")
    invalidate(tier_ids=[metering.tier.pk])  # as the tier's service does
    answers = [httpx.get(f"{api}/fast", headers=key) for _ in range(5)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    assert int(limited[0].headers["retry-after"]) >= 1

    flush_all()
    served = 2 + sum(a.status_code == 200 for a in answers)
    assert usage_total(metering.subscription) == served


def test_nginx_passes_a_blocked_subscription_on_as_403(metering, nginx):
    metering.subscription.state = "BLOCKED"
    metering.subscription.save()
    response = httpx.get(
        f"{nginx}/acme/weather/v1/fast", headers={"X-API-Key": metering.key}
    )
    assert response.status_code == 403
    flush_all()
    assert usage_total(metering.subscription) == 0
