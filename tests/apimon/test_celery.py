"""Celery runs for real with no Redis: a worker process consumes a task that this
process sent through Kombu's filesystem transport, and beat's schedule reaches a worker
whose result the web process shows, as under `make run`."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apimon.celery import BEAT_SCHEDULE, app
from tests.conftest import make_user
from tests.helpers import ROOT, run_python


@pytest.mark.django_db
def test_every_scheduled_job_names_a_registered_task():
    app.loader.import_default_modules()
    assert BEAT_SCHEDULE
    for entry in BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks, entry["task"]


def test_a_worker_runs_tasks_over_the_filesystem_transport(tmp_path):
    environ = _no_redis_environ(tmp_path)
    send = (
        "import django; django.setup(); from apimon.tasks import heartbeat; "
        "heartbeat.delay(); print('sent')"
    )
    sent = run_python("-c", send, env=environ)
    assert sent.stdout.strip() == "sent", sent.stderr
    assert list((tmp_path / "celery-queue").iterdir()), "the message is on disk"

    worker_log = tmp_path / "worker.log"
    worker = _celery(
        ["worker", "--pool", "solo", "--loglevel", "INFO"], environ, worker_log
    )
    try:
        # The same line, as Celery logs it: "Task apimon.tasks.heartbeat[…] succeeded".
        _wait_for(worker_log, r"apimon\.tasks\.heartbeat.*succeeded", 45)
    finally:
        _stop(worker)


def _no_redis_environ(var_dir: Path) -> dict[str, str]:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")
    }
    environ.update(
        APIMON_VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="apimon.settings",
        CELERY_TASK_ALWAYS_EAGER="0",
    )
    return environ


def _celery(args: list[str], environ: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "apimon", *args],
            cwd=ROOT,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


def _wait_for(log: Path, pattern: str, seconds: float) -> re.Match:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text())
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {pattern!r} in {log.name}:\n{log.read_text()}")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:  # pragma: no cover - a stuck child
        process.kill()
        process.wait(timeout=5)


@pytest.mark.django_db
def test_beat_schedules_the_heartbeat_and_the_home_page_of_another_process_shows_it(
    tmp_path, settings, client_for
):
    """Three processes as `make run` has them, with no Redis: `celery beat` sends the
    heartbeat of BEAT_SCHEDULE through the filesystem queue, `celery worker` runs it, and
    this process, in the role of the web process, shows that beat on the home page."""
    var_dir = tmp_path / "var"
    environ = _no_redis_environ(var_dir)
    beat_log, worker_log = tmp_path / "beat.log", tmp_path / "worker.log"
    # This process reads the cache those processes write (apimon.settings without
    # REDIS_URL), not the test run's own.
    configured = run_python(
        "-c",
        "import django, json; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.CACHES['default'], default=str))",
        env=environ,
    )
    assert configured.returncode == 0, configured.stderr
    settings.CACHES = {"default": json.loads(configured.stdout)}
    staff = make_user("staff@apimon.test")
    staff.is_staff = True
    staff.save()
    assert "no beat seen yet" in client_for(staff).get("/home/").content.decode()

    beat = _celery(
        [
            "beat",
            "--scheduler",
            "tests.apimon.beat_now:HeartbeatDueNow",
            "--max-interval",
            "1",
            "--loglevel",
            "INFO",
        ],
        environ,
        beat_log,
    )
    worker = _celery(
        ["worker", "--pool", "solo", "--loglevel", "INFO"], environ, worker_log
    )
    try:
        _wait_for(
            beat_log, r"Sending due task heartbeat \(apimon\.tasks\.heartbeat\)", 45
        )
        done = _wait_for(
            worker_log,
            r"Task apimon\.tasks\.heartbeat\[[^\]]+\] succeeded in [^:]+: '([^']+)'",
            45,
        )
    finally:
        _stop(beat)
        _stop(worker)

    page = client_for(staff).get("/home/").content.decode()
    assert f"last beat {done.group(1)}" in page
