"""Fixtures of the fault tests: one throw-away PostgreSQL cluster for the session
(migrated once; each stack gets a fresh copy of the database) and `stack_factory`,
which starts apimon's processes and always stops them, even when a test fails
(their logs are printed then).

Where PostgreSQL's binaries or redis-server are missing the tests skip and say
why; APIMON_REQUIRE_FAULTS=1 (CI) makes that a failure instead."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.faults.harness.procs import postgres_bin
from tests.faults.harness.stack import Layout, Stack, migrated_postgres


def _missing() -> str | None:
    if postgres_bin() is None:
        return "PostgreSQL's initdb and pg_ctl are not installed"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    return None


@pytest.fixture(scope="session")
def faults_postgres():
    missing = _missing()
    if missing:
        if os.environ.get("APIMON_REQUIRE_FAULTS") == "1":
            pytest.fail(f"APIMON_REQUIRE_FAULTS=1 but {missing}")
        pytest.skip(f"{missing} — fault tests skipped")
    root = Path(tempfile.mkdtemp(prefix="apimon-faults-"))
    cluster = None
    try:
        cluster, template = migrated_postgres(root)
        yield cluster, template
    finally:
        if cluster is not None:
            cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.faults_failed = report.failed
    return report


@pytest.fixture
def stack_factory(faults_postgres, request):
    """stack_factory(Layout(...)) → a started Stack on a fresh database."""
    cluster, template = faults_postgres
    stacks: list[Stack] = []

    def make(layout: Layout | None = None) -> Stack:
        stack = Stack(layout=layout, postgres=cluster, database=template)
        stacks.append(stack)
        stack.start()
        return stack

    yield make
    for stack in stacks:
        if getattr(request.node, "faults_failed", False):
            print(f"\n==== logs of the stack in {stack.root}\n{stack.logs_tail()}")
        stack.close()
