"""Processes the fault harness starts, stops and kills: each is started by this
harness on a free loopback port, in its own process group, and only ever signalled
by its own pid (or group), never by name.

`Process` runs one command (uvicorn, a Celery worker or beat, the Stripe emulator,
the sample backend, redis-server); `PostgresCluster` is a throw-away PostgreSQL
cluster (initdb into a temporary directory, pg_ctl on a free port) run as the
`postgres` user when the harness runs as root, since PostgreSQL refuses root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx


class HarnessError(RuntimeError):
    """A process did not start, stop or answer in time; the message has its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(
    condition: Callable[[], object],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str = "a condition",
):
    """Poll `condition` until it returns something true; its value. Raises
    HarnessError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    return check


def rss_kib(pid: int) -> int:
    """Resident memory of one process in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    """Direct children of `pid` (uvicorn's and Celery prefork's workers)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


class Process:
    """One command in its own process group, with its output in `log`.

    `ready` says when it serves (polled after start, bounded by `start_timeout`).
    `stop()` sends SIGTERM and waits, `kill()` sends SIGKILL to the whole group (a
    node dying with its forked workers), `start()` again restarts it with the same
    command and port."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        cwd: Path,
        log_dir: Path,
        ready: Callable[[], object] | None = None,
        start_timeout: float = 60,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log = log_dir / f"{name}.log"
        self.ready = ready
        self.start_timeout = start_timeout
        self.popen: subprocess.Popen | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self, *, wait: bool = True) -> Process:
        if self.alive:
            raise HarnessError(f"{self.name} is already running")
        self.starts += 1
        with self.log.open("a") as out:
            out.write(f"\n==== start #{self.starts} at {time.time():.3f}\n")
            out.flush()
            self.popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: kill() takes its workers too
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        if self.ready is None:
            return
        deadline = time.monotonic() + (timeout or self.start_timeout)
        while time.monotonic() < deadline:
            if not self.alive:
                raise HarnessError(f"{self.name} exited:\n{self.tail()}")
            if self.ready():
                return
            time.sleep(0.1)
        raise HarnessError(f"{self.name} not ready in time:\n{self.tail()}")

    def signal(self, sig: int, *, group: bool = False) -> None:
        if not self.alive:
            return
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.popen.pid, sig)  # the group this harness created
            else:
                self.popen.send_signal(sig)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL if it does not end in time."""
        if not self.alive:
            self._reap_group()
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL, group=True)
            self.popen.wait(10)
        self._reap_group()

    def kill(self) -> None:
        """SIGKILL to the process and every process of its group, at once."""
        if self.popen is None:
            return
        self.signal(signal.SIGKILL, group=True)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        self._reap_group()

    def _reap_group(self) -> None:
        # Forked workers left behind by a parent that died: only this group's.
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def rss_kib(self) -> int:
        """Resident memory of the process and its direct children (workers)."""
        if not self.alive:
            return 0
        return rss_kib(self.pid) + sum(rss_kib(c) for c in children(self.pid))

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


# ---- PostgreSQL ---------------------------------------------------------------------


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian's layout), or the
    directory of `pg_ctl` on PATH; None when there is none."""
    versions = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        try:
            versions.append((float(path.parent.name), path))
        except ValueError:
            continue
    for _version, path in sorted(versions, reverse=True):
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    return None


class PostgresCluster:
    """A PostgreSQL cluster of its own in a temporary directory, on a free port.

    Tuned for tests (fsync off: the data is thrown away). `stop(mode)` uses pg_ctl's
    modes: "fast" (a clean restart) or "immediate" (a crash: no shutdown checkpoint,
    crash recovery on the next start)."""

    def __init__(self, root: Path, *, bin_dir: Path | None = None) -> None:
        self.bin = bin_dir or postgres_bin()
        if self.bin is None:
            raise HarnessError("no PostgreSQL binaries (initdb, pg_ctl) found")
        self.dir = Path(tempfile.mkdtemp(prefix="pg-", dir=root))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = free_port()
        self.user = "postgres"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            # The harness's temporary root must be traversable by that user.
            os.chmod(root, 0o755)
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/apimon"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        argv = list(args)
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise HarnessError(
                f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}"
                f"{done.stderr}\n{self.tail()}"
            )
        return done

    def init(self) -> PostgresCluster:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user,
            "--auth=trust", "--encoding=UTF8", "--no-instructions",
        )  # fmt: skip
        self.start()
        self._run(
            str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
            "-U", self.user, "-d", "postgres", "-qc", "CREATE DATABASE apimon",
        )  # fmt: skip
        return self

    def start(self, timeout: float = 60) -> None:
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.dir}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
                "-c shared_buffers=64MB",
            ]
        )
        self._run(
            str(self.bin / "pg_ctl"), "start", "-w", "-t", str(int(timeout)),
            "-D", str(self.data), "-l", str(self.log), "-o", options,
            timeout=timeout + 10,
        )  # fmt: skip

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        if not (self.data / "postmaster.pid").exists():
            return
        self._run(
            str(self.bin / "pg_ctl"), "stop", "-w", "-t", str(int(timeout)),
            "-m", mode, "-D", str(self.data), timeout=timeout + 10,
        )  # fmt: skip

    def restart(self, *, mode: str = "fast", down_for: float = 0.0) -> None:
        self.stop(mode)
        time.sleep(down_for)
        self.start()
        self.restarts += 1

    @property
    def running(self) -> bool:
        return port_open(self.port)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def destroy(self) -> None:
        """Stop it (immediately) and delete its files; safe to call twice."""
        try:
            self.stop("immediate", timeout=30)
        except (HarnessError, subprocess.TimeoutExpired):
            pid = self.postmaster_pid()
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


# ---- Redis ----------------------------------------------------------------------------


def redis_server(root: Path, log_dir: Path, *, env: dict[str, str]) -> Process:
    """A redis-server of its own: a free port, no persistence (a restart loses its
    memory, as an unpersisted Redis does), its files in a temporary directory."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise HarnessError("redis-server is not installed")
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="redis-", dir=root))
    proc = Process(
        "redis",
        [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(data), "--daemonize", "no",
            "--protected-mode", "no",
        ],
        env=env, cwd=data, log_dir=log_dir, ready=lambda: port_open(port),
    )  # fmt: skip
    proc.port = port  # type: ignore[attr-defined]
    return proc
