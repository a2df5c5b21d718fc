"""Celery runs for real with no Redis: a worker process consumes a task that this
process sent through Kombu's filesystem transport, as `make run` does."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apimon.celery import BEAT_SCHEDULE, app

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_every_scheduled_job_names_a_registered_task():
    app.loader.import_default_modules()
    assert BEAT_SCHEDULE
    for entry in BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks, entry["task"]


def test_a_worker_runs_tasks_over_the_filesystem_transport(tmp_path):
    environ = {
        k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")
    }
    environ.update(
        APIMON_VAR_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="apimon.settings",
        CELERY_TASK_ALWAYS_EAGER="0",
    )
    send = (
        "import django; django.setup(); from apimon.tasks import heartbeat; "
        "heartbeat.delay(); print('sent')"
    )
    sent = subprocess.run(
        [sys.executable, "-c", send],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.stdout.strip() == "sent", sent.stderr
    assert list((tmp_path / "celery-queue").iterdir()), "the message is on disk"

    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "apimon",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 45
        output = []
        while time.monotonic() < deadline:
            line = worker.stdout.readline()
            output.append(line)
            if "apimon.tasks.heartbeat" in line and "succeeded" in line:
                break
        else:
            raise AssertionError("the worker did not run the task:\n" + "".join(output))
    finally:
        worker.terminate()
        worker.wait(timeout=20)
