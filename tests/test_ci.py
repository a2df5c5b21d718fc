"""`.ci/run` on a CI machine: the PostgreSQL cluster it starts and the chromium install."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = (ROOT / ".ci" / "run").read_text()


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


def test_the_fault_tests_are_required():
    assert "export APIMON_REQUIRE_FAULTS=1" in SCRIPT
