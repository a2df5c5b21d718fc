"""Settings for the test suite: apimon's own settings read with test-run defaults.

The suite runs with whatever DATABASE_URL / REDIS_URL the environment gives (CI points
them at real PostgreSQL and Redis); with neither it runs on SQLite and stand-ins.

Each process that imports these settings (a serial run, or each pytest-xdist worker and
the controller) gets its own var directory, a fresh temporary one removed at exit, so
two runs in one checkout never share the SQLite test database, the file cache or the
Celery queue. APIMON_VAR_DIR set in the environment is used as it is instead.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("STRIPE_EMULATOR_IN_PROCESS", "1")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
# The gateway's tests run their backends on 127.0.0.1: the suite allows private
# networks (whatever DEBUG says) and the tests of the egress policy turn it on.
os.environ.setdefault("BACKEND_PRIVATE_NETWORKS", "allow")

_OWN_VAR_DIR = "APIMON_VAR_DIR" not in os.environ
if _OWN_VAR_DIR:
    _run_dir = tempfile.mkdtemp(prefix="apimon-test-")
    atexit.register(shutil.rmtree, _run_dir, ignore_errors=True)
    os.environ["APIMON_VAR_DIR"] = _run_dir

try:
    from apimon.settings import *  # noqa: F403
finally:
    # Not inherited: xdist workers (started after the controller has read these
    # settings) must each make their own directory.
    if _OWN_VAR_DIR:
        del os.environ["APIMON_VAR_DIR"]

# Hashing with the default PBKDF2 makes every login in a test take ~0.3 s.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Browser tests run the live server in threads next to the emulator's webhook sender.
# SQLite's shared-cache in-memory database answers concurrent writers with "table is
# locked" at once; a file database waits for the lock (OPTIONS timeout) instead.
# pytest-xdist adds the worker's suffix (test-db.sqlite3_gw0); the directory is this
# process's own anyway.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}  # noqa: F405

# With an explicit APIMON_VAR_DIR the xdist workers share it: each keeps its own file
# cache there (a test's cache.clear() must not reset another worker's counters).
_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker and CACHES["default"]["BACKEND"].endswith("FileBasedCache"):  # noqa: F405
    CACHES["default"]["LOCATION"] = str(VAR_DIR / "cache" / _worker)  # noqa: F405
