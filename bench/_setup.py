"""Shared set-up of the benchmarks: real PostgreSQL (database apimon_bench) and Redis
(DB 4), fixed ports, the demo objects, and helpers to run servers and wrk."""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/apimon_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")
# Fixed ports, overridable where several checkouts share the machine.
BACKEND_PORT = int(os.environ.get("BENCH_BACKEND_PORT", "8201"))
APIMON_PORT = int(os.environ.get("BENCH_APIMON_PORT", "8202"))

SERVER_ENV = {
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "DEBUG": "0",
    "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "0",
    "SECURE_HSTS_SECONDS": "0",
    "LOG_LEVEL": "WARNING",
    "GATEWAY_BACKEND_TIMEOUT": "30",
    # DEBUG=0 needs an explicit Stripe choice; the benchmarks make no Stripe call.
    "STRIPE_EMULATOR_URL": "http://127.0.0.1:12111",
    "STRIPE_EMULATOR_CONTROL_SECRET": "bench-only-emulator-secret-0123456789",
    "STRIPE_WEBHOOK_SECRET": "whsec_bench-only-not-a-secret",
    # The egress policy on, as in production, with the benchmark's loopback backend
    # allowed: the gateway checks every connection it opens, as it would anywhere.
    "BACKEND_PRIVATE_NETWORKS": "deny",
    "BACKEND_ALLOWED_NETWORKS": "127.0.0.1/32",
}


def environ(**extra) -> dict:
    env = {**os.environ, **SERVER_ENV, **extra}
    env["PYTHONPATH"] = str(ROOT)
    return env


def django_setup() -> None:
    os.environ.update(SERVER_ENV)
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    sys.path.insert(0, str(ROOT))
    _create_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _create_database() -> None:
    import psycopg2

    name = DATABASE_URL.rsplit("/", 1)[1]
    admin = psycopg2.connect(DATABASE_URL.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if not cur.fetchone():
            cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    pg = subprocess.run(
        ["psql", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    redis = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split(" sha=")[0]
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"{pg}, {redis}"
    )


def loadavg() -> str:
    """The machine's load before a run: other work on this shared machine skews figures."""
    return Path("/proc/loadavg").read_text().split()[0]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


class Proc:
    """A server process, stopped by its own pid (never by name)."""

    def __init__(self, args: list[str], env: dict, port: int) -> None:
        self.args = args
        self.p = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_port(port)
        except RuntimeError:
            self.stop()
            raise RuntimeError(self.p.stderr.read().decode()[-3000:]) from None

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def backend() -> Proc:
    return Proc(
        [sys.executable, "-m", "sample_api", "--port", str(BACKEND_PORT)],
        environ(),
        BACKEND_PORT,
    )


def apimon(
    app: str = "apimon.asgi:application", workers: int = 1, **extra_env: str
) -> Proc:
    return Proc(
        [
            sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
            "--port", str(APIMON_PORT), "--workers", str(workers), "--loop", "uvloop",
            "--http", "httptools", "--no-access-log", "--log-level", "warning",
            "--backlog", "4096",
        ],
        environ(DJANGO_SETTINGS_MODULE="bench.settings", **extra_env),
        APIMON_PORT,
    )  # fmt: skip


def wrk_path() -> str:
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("wrk is needed: apt-get install wrk")
    return path


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * _UNITS[unit]


def wrk(
    url: str, *, connections: int, seconds: int, threads: int = 1, headers=()
) -> dict:
    """Run wrk (a second process on loopback) and parse req/s, p50, p99, errors."""
    args = [wrk_path(), "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
            "--latency", "--timeout", "10s"]  # fmt: skip
    for header in headers:
        args += ["-H", header]
    out = subprocess.run(
        [*args, url], capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": p50,
        "p99": p99,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": errors.group(1).strip() if errors else "",
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
    }
