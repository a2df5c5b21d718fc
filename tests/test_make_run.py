"""`make run`'s processes find each other: the Stripe emulator sends its webhooks to
the port the web process listens on, for any PORT. Honcho itself sets PORT per
process (its base + 100 × the process's index), so this is computed the way honcho
starts them: `make -n run` for the environment, honcho's own expansion per process,
then the shell's expansion of each command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from honcho.environ import expand_processes, parse_procfile

ROOT = Path(__file__).resolve().parents[1]


def make_run_environment(port: int) -> dict[str, str]:
    dry = subprocess.run(
        ["make", "-n", "run", f"PORT={port}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    line = next(x for x in dry.stdout.splitlines() if "honcho -f Procfile.dev" in x)
    assignments = line.split("honcho -f Procfile.dev")[0].rsplit(" ", 1)[0]
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "SITE_URL")}
    shown = subprocess.run(
        ["sh", "-c", f"{assignments} env -0"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return dict(item.split("=", 1) for item in shown.stdout.split("\0") if item)


def expanded_commands(env: dict[str, str]) -> dict[str, str]:
    procfile = parse_procfile((ROOT / "Procfile.dev").read_text())
    commands = {}
    for process in expand_processes(procfile.processes, env=env):
        echoed = subprocess.run(
            ["sh", "-c", f"echo {process.cmd}"],
            capture_output=True,
            text=True,
            env=process.env,
            check=True,
        )
        commands[process.name.split(".")[0]] = echoed.stdout.strip()
    return commands


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("port", [8000, 8311])
def test_the_emulator_sends_webhooks_to_the_web_process(port):
    env = make_run_environment(port)
    commands = expanded_commands(env)

    web_port = re.search(r"--port (\d+)", commands["web"]).group(1)
    webhook = re.search(r"--webhook-url (\S+)", commands["stripe"]).group(1)
    assert web_port == str(port)
    assert webhook == f"http://127.0.0.1:{port}/billing/stripe/webhook/"
    assert env["SITE_URL"] == f"http://127.0.0.1:{port}"
