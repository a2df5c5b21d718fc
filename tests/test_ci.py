"""`.ci/run` on a CI machine: the PostgreSQL cluster it starts, the chromium install and
the Stripe example objects it will not run without."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = (ROOT / ".ci" / "run").read_text()
STRIPE_EXAMPLES = Path("tests/stripe_emulator/stripe-openapi/fixtures3.json")


def test_it_starts_the_newest_postgresql_when_several_are_installed(tmp_path):
    (line,) = [line for line in SCRIPT.splitlines() if "pg_ctlcluster" in line]
    (version_command,) = re.findall(r'"\$\((ls /etc/postgresql[^)]*)\)"', line)
    for version in ("9.6", "16", "17", "10"):
        (tmp_path / version).mkdir()
    result = subprocess.run(
        ["bash", "-c", version_command.replace("/etc/postgresql", str(tmp_path))],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "17"


def test_it_installs_chromium_and_nginx_when_missing_after_updating_the_lists():
    block = re.search(r"command -v chromium.*?\nfi\n", SCRIPT, re.S).group()
    update, install = block.index("apt-get update"), block.index("apt-get install")
    assert update < install
    assert (
        'missing="$missing chromium"' in block and 'missing="$missing nginx"' in block
    )
    assert "export APIMON_REQUIRE_NGINX=1" in SCRIPT


def test_the_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], check=True)


def _run_fixtures_check(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    block = re.search(r"\nfixtures=.*?\nfi\n", SCRIPT, re.S).group()
    environ = {k: v for k, v in os.environ.items() if k != "STRIPE_FIXTURES"}
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + block],
        cwd=cwd,
        env=environ | env,
        capture_output=True,
        text=True,
    )


def test_it_fails_when_stripes_example_objects_are_missing(tmp_path):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    # A copy beside the checkout (where they once were looked up) does not count.
    shared = tmp_path / "shared" / "stripe" / "fixtures3.json"
    shared.parent.mkdir(parents=True)
    shared.write_text("{}")

    result = _run_fixtures_check(checkout)

    assert result.returncode == 1
    assert "Stripe's example objects are missing" in result.stderr
    assert str(STRIPE_EXAMPLES) in result.stderr


def test_it_fails_when_stripe_fixtures_names_a_missing_file(tmp_path):
    result = _run_fixtures_check(ROOT, STRIPE_FIXTURES=str(tmp_path / "nope.json"))

    assert result.returncode == 1
    assert "nope.json" in result.stderr


def test_it_runs_with_the_example_objects_the_repository_carries():
    assert _run_fixtures_check(ROOT).returncode == 0
    examples = ROOT / STRIPE_EXAMPLES
    assert "invoice" in json.loads(examples.read_text())["resources"]
    licence = (examples.parent / "LICENSE").read_text()
    assert licence.startswith("The MIT License") and "Stripe, Inc." in licence


def test_the_fault_tests_are_required():
    assert "export APIMON_REQUIRE_FAULTS=1" in SCRIPT
