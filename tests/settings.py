"""Settings for the test suite: apimon's own settings read with test-run defaults.

The suite runs with whatever DATABASE_URL / REDIS_URL the environment gives (CI points
them at real PostgreSQL and Redis); with neither it runs on SQLite and stand-ins.
"""

import os

os.environ.setdefault("STRIPE_EMULATOR_IN_PROCESS", "1")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
os.environ.setdefault(
    "APIMON_VAR_DIR", os.path.join(os.path.dirname(__file__), "..", "var", "test")
)

from apimon.settings import *  # noqa: F403

# Hashing with the default PBKDF2 makes every login in a test take ~0.3 s.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Browser tests run the live server in threads next to the emulator's webhook sender.
# SQLite's shared-cache in-memory database answers concurrent writers with "table is
# locked" at once; a file database waits for the lock (OPTIONS timeout) instead.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}  # noqa: F405
