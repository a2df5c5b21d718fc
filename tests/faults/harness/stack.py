"""apimon's whole layout as real processes on loopback, for fault tests and
bench/faults.py: a PostgreSQL cluster and a redis-server of its own, the Stripe
emulator, the sample backend (with its served-requests counter), N web processes
(uvicorn: Django + the gateway), M Celery workers and one beat.

    with Stack(root, Layout(webs=2, workers=2)) as stack:
        world = stack.setup_world(subscriptions=20)
        ...
        stack.redis.kill(); stack.redis.start()

Nothing here touches a service it did not start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.faults.harness.procs import (
    HarnessError,
    PostgresCluster,
    Process,
    free_port,
    http_ok,
    redis_server,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[3]
# Variables of the caller (the test run's own settings, CI's shared services) that
# must not leak into the stack's processes.
_NOT_INHERITED = (
    "DJANGO_", "DATABASE_", "REDIS_", "STRIPE_", "CELERY_", "APIMON_", "BILLING_",
    "GATEWAY_", "SITE_URL", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "PYTEST_",
)  # fmt: skip


@dataclass
class Layout:
    """How many of each process, and settings for all of them."""

    webs: int = 1
    workers: int = 1
    worker_concurrency: int = 2
    beat: bool = True
    settings: dict[str, str] = field(default_factory=dict)


class Stack:
    def __init__(
        self,
        root: Path | None = None,
        layout: Layout | None = None,
        *,
        postgres: PostgresCluster | None = None,
        database: str | None = None,
    ) -> None:
        """`postgres` (with a migrated `database` to copy) lets several stacks share
        one cluster; without it the stack makes its own and migrates it."""
        self.layout = layout or Layout()
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="apimon-faults-"))
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.var = self.root / "var"
        self.var.mkdir(exist_ok=True)
        self._own_postgres = postgres is None
        self.postgres = postgres
        self._template = database
        self.database = ""
        self.redis: Process | None = None
        self.emulator: Process | None = None
        self.backend: Process | None = None
        self.webs: list[Process] = []
        self.workers: list[Process] = []
        self.beat: Process | None = None
        self.ports: dict[str, int] = {}
        self._celery_app = None

    # ---- lifecycle ----------------------------------------------------------------

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        base = self._base_env()
        if self.postgres is None:
            self.postgres = PostgresCluster(self.root).init()
        self.database = self._new_database()
        self.redis = redis_server(self.root, self.logs, env=base)
        self.redis.start(wait=False)
        self.ports = {
            "redis": self.redis.port,  # type: ignore[attr-defined]
            "emulator": free_port(),
            "backend": free_port(),
            **{f"web{i}": free_port() for i in range(self.layout.webs)},
        }
        self.env = self._apimon_env(base)
        if self._template is None:
            self.manage("migrate", "--no-input", timeout=300)
        self.backend = Process(
            "backend",
            [sys.executable, "-m", "sample_api", "--host", "127.0.0.1",
             "--port", str(self.ports["backend"]), "--count-served"],
            env=base, cwd=ROOT, log_dir=self.logs,
            ready=http_ok(f"{self.backend_url}/"),
        )  # fmt: skip
        self.emulator = Process(
            "emulator",
            [sys.executable, "-m", "stripe_emulator", "--host", "127.0.0.1",
             "--port", str(self.ports["emulator"]),
             "--db", str(self.root / "stripe-emulator.sqlite3"),
             "--webhook-url", f"{self.web_url()}/billing/stripe/webhook/"],
            env=base, cwd=ROOT, log_dir=self.logs,
            ready=http_ok(f"{self.emulator_url}/_emulator/"),
        )  # fmt: skip
        for i in range(self.layout.webs):
            self.webs.append(self._web(i))
        for i in range(self.layout.workers):
            self.workers.append(self._worker(i))
        if self.layout.beat:
            self.beat = self._celery(
                "beat",
                ["beat", "--loglevel", "INFO", "--max-interval", "1",
                 "--schedule", str(self.var / "celerybeat-schedule")],
                ready_line="beat: Starting",
            )  # fmt: skip
        everything = [self.redis, self.backend, self.emulator, *self.processes]
        for proc in everything[1:]:
            proc.start(wait=False)
        for proc in everything:
            proc.wait_ready()

    def close(self) -> None:
        """Stop every process this stack started and delete its files."""
        if self._celery_app is not None:
            with contextlib.suppress(Exception):
                self._celery_app.close()
        for proc in [*self.processes, self.emulator, self.backend, self.redis]:
            if proc is not None:
                with contextlib.suppress(Exception):
                    proc.kill()
        if self.postgres is not None:
            if self._own_postgres:
                self.postgres.destroy()
            elif self.database and self.postgres.running:
                with contextlib.suppress(Exception):
                    self.psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def processes(self) -> list[Process]:
        """apimon's own processes: web, worker, beat."""
        return [*self.webs, *self.workers, *([self.beat] if self.beat else [])]

    # ---- apimon's processes ---------------------------------------------------------

    def _web(self, i: int) -> Process:
        port = self.ports[f"web{i}"]
        return Process(
            f"web{i}",
            [sys.executable, "-m", "uvicorn", "apimon.asgi:application",
             "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
             "--workers", "1", "--log-level", "warning"],
            env=self.env, cwd=ROOT, log_dir=self.logs,
            ready=http_ok(f"http://127.0.0.1:{port}/healthz"),
        )  # fmt: skip

    def _worker(self, i: int) -> Process:
        return self._celery(
            f"worker{i}",
            ["worker", "--loglevel", "INFO", "--pool", "prefork",
             "--concurrency", str(self.layout.worker_concurrency),
             "-n", f"worker{i}@faults", "--without-gossip", "--without-mingle"],
            ready_line=f"worker{i}@faults ready",
        )  # fmt: skip

    def _celery(self, name: str, args: list[str], *, ready_line: str) -> Process:
        proc = Process(
            name,
            [sys.executable, "-m", "celery", "-A", "apimon", *args],
            env=self.env,
            cwd=ROOT,
            log_dir=self.logs,
        )
        proc.ready = lambda: ready_line in _since_last_start(proc)
        return proc

    def add_worker(self) -> Process:
        worker = self._worker(len(self.workers))
        self.workers.append(worker)
        return worker.start()

    # ---- addresses and environment ---------------------------------------------------

    def web_url(self, i: int = 0) -> str:
        return f"http://127.0.0.1:{self.ports[f'web{i}']}"

    @property
    def web_urls(self) -> list[str]:
        return [self.web_url(i) for i in range(self.layout.webs)]

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['emulator']}"

    @property
    def backend_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['backend']}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['redis']}/0"

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.postgres.port}/{self.database}"

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
        env.update(PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
        return env

    def _apimon_env(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        env.update(
            DJANGO_SETTINGS_MODULE="apimon.settings",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            STRIPE_EMULATOR_URL=self.emulator_url,
            STRIPE_EMULATOR_IN_PROCESS="0",
            CELERY_TASK_ALWAYS_EAGER="0",
            APIMON_VAR_DIR=str(self.var),
            SITE_URL=self.web_url(),
            DEBUG="1",
            LOG_LEVEL="INFO",
            # A short backend timeout and settle delay: periods close seconds after
            # they end, as in production minutes after.
            GATEWAY_BACKEND_TIMEOUT="5",
            BILLING_USAGE_SETTLE_SECONDS="1",
            # A Stripe that hangs is given up after 3 s (then retried) rather than 20.
            STRIPE_TIMEOUT="3",
        )
        env.update(self.layout.settings)
        return env

    def _new_database(self) -> str:
        if self._template is None:
            return "apimon"
        name = f"apimon_{os.getpid()}_{time.monotonic_ns()}"
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        return name

    # ---- doing things as apimon's operator would ---------------------------------------

    def manage(self, *args: str, timeout: float = 120) -> str:
        """`python manage.py ARGS` with the stack's settings; its output."""
        return self.python("manage.py", *args, timeout=timeout)

    def python(self, *args: str, timeout: float = 120, input: str | None = None) -> str:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
        if done.returncode != 0:
            raise HarnessError(
                f"python {' '.join(args)} failed:\n{done.stdout[-3000:]}"
                f"{done.stderr[-5000:]}"
            )
        return done.stdout

    def send_task(self, name: str, *args: Any) -> None:
        """Queue a Celery task by name on the stack's broker, as beat does."""
        if self._celery_app is None:
            from celery import Celery

            self._celery_app = Celery("faults-harness", broker=self.redis_url)
        self._celery_app.send_task(name, args=list(args))

    def setup_world(self, **spec: Any) -> dict[str, Any]:
        """Tenants, APIs, tiers, subscriptions and keys (tests/faults/harness/world)."""
        spec = {"backend": self.backend_url, **spec}
        out = self.python(
            "-m", "tests.faults.harness.world", input=json.dumps(spec), timeout=300
        )
        return json.loads(out.strip().splitlines()[-1])

    def psql(self, sql: str, *, database: str = "postgres") -> None:
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.postgres.port, user="postgres", dbname=database
        )
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def query(self, sql: str, params: Any = None) -> list[tuple]:
        """Rows of a query on the stack's database (the ground truth of apimon's
        side), retried while PostgreSQL comes back from a restart."""
        import psycopg2

        def attempt():
            try:
                conn = psycopg2.connect(
                    host="127.0.0.1", port=self.postgres.port, user="postgres",
                    dbname=self.database, connect_timeout=3,
                )  # fmt: skip
            except psycopg2.OperationalError:
                return None
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, params)
                    return [cur.fetchall()]
            finally:
                conn.close()

        return wait_until(attempt, timeout=60, interval=0.5, what="the database")[0]

    @contextlib.contextmanager
    def holding(self, sql: str):
        """Run `sql` (a lock: `SELECT pg_advisory_lock(…)`, `LOCK TABLE …`) in a
        transaction of its own and keep it open: whatever apimon process needs that
        lock waits inside its own transaction until the block ends or PostgreSQL
        goes down. That is how a fault is timed to fall *inside* a job."""
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.postgres.port, user="postgres",
            dbname=self.database,
        )  # fmt: skip
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
            yield
        finally:
            with contextlib.suppress(psycopg2.Error):
                conn.close()

    def lock_waiters(self) -> int:
        """apimon's sessions waiting for a lock right now."""
        rows = self.query(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return rows[0][0]

    def emulator_control(self, path: str, **data: Any) -> dict[str, Any]:
        url = f"{self.emulator_url}/_emulator/{path}"
        answer = (
            httpx.post(url, data=data, timeout=10)
            if data
            else httpx.get(url, timeout=10)
        )
        answer.raise_for_status()
        return answer.json()

    def rss(self) -> dict[str, int]:
        """Resident memory (KiB) of each running process this stack started."""
        procs = [*self.processes, self.emulator, self.backend, self.redis]
        return {p.name: p.rss_kib() for p in procs if p is not None and p.alive}

    def logs_tail(self, chars: int = 2500) -> str:
        procs = [*self.processes, self.emulator, self.backend, self.redis]
        return "\n".join(
            f"---- {p.name}\n{p.tail(chars)}" for p in procs if p is not None
        )


def migrated_postgres(root: Path) -> tuple[PostgresCluster, str]:
    """A PostgreSQL cluster with apimon's schema in database `apimon`, which stacks
    then copy (CREATE DATABASE … TEMPLATE) instead of migrating again."""
    cluster = PostgresCluster(root).init()
    env = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
    env.update(
        DJANGO_SETTINGS_MODULE="apimon.settings",
        DATABASE_URL=cluster.url,
        APIMON_VAR_DIR=str(root / "migrate-var"),
        STRIPE_EMULATOR_IN_PROCESS="0",
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        cluster.destroy()
        raise HarnessError(
            f"migrate failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}"
        )
    return cluster, "apimon"


def _since_last_start(proc: Process) -> str:
    text = proc.tail(200_000)
    return text.rsplit("==== start #", 1)[-1]
