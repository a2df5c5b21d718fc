"""State in SQLite: every object is a JSON row keyed by id and owning account.

One connection guarded by a re-entrant lock: the emulator serialises requests, which
keeps it simple and makes every request atomic (a failed request leaves no trace,
except where Stripe itself keeps one, see `StripeError.persist`).

`objects.due_at` is when the object next needs automatic work (`automation.job_for`),
set on every insert and save and indexed where not null, so the automation loop finds
its work without reading every invoice.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from stripe_emulator.automation import TYPES as _DUE_TYPES
from stripe_emulator.automation import job_for

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    type TEXT NOT NULL,
    created INTEGER NOT NULL,
    data TEXT NOT NULL,
    due_at INTEGER
);
CREATE INDEX IF NOT EXISTS objects_by_type ON objects (account, type, created, seq);
CREATE INDEX IF NOT EXISTS objects_by_type_only ON objects (type);
CREATE INDEX IF NOT EXISTS objects_by_invoice
    ON objects (account, type, json_extract(data, '$.invoice'), created, seq);
-- Invoice numbers are unique per account (Stripe refuses a number already used).
CREATE INDEX IF NOT EXISTS objects_by_invoice_number
    ON objects (account, json_extract(data, '$.number')) WHERE type = 'invoice';
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
-- Every request expires keys older than a day: without it, a scan of every key kept.
CREATE INDEX IF NOT EXISTS idempotency_by_created ON idempotency (created);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    url TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    first_attempt_at INTEGER,
    last_status INTEGER,
    last_error TEXT,
    event_created INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
# After the column exists (`_add_due_at` adds it to a database from before it).
_DUE_INDEX = (
    "CREATE INDEX IF NOT EXISTS objects_due ON objects (due_at, seq) "
    "WHERE due_at IS NOT NULL"
)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {value!r}")


def dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def _due_at(type: str | None, obj: dict[str, Any]) -> int | None:
    job = job_for(type, obj) if type in _DUE_TYPES else None
    return job[0] if job else None


class Store:
    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None
        )
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        self._add_due_at()
        self._conn.execute(_DUE_INDEX)
        self._depth = 0

    def _add_due_at(self) -> None:
        """A database written before `due_at` existed: add the column and fill it."""
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(objects)")}
        if "due_at" in columns:
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute("ALTER TABLE objects ADD COLUMN due_at INTEGER")
        marks = ", ".join("?" * len(_DUE_TYPES))
        rows = self._conn.execute(
            f"SELECT seq, type, data FROM objects WHERE type IN ({marks})",  # noqa: S608
            _DUE_TYPES,
        ).fetchall()
        self._conn.executemany(
            "UPDATE objects SET due_at = ? WHERE seq = ?",
            [(_due_at(type, json.loads(data)), seq) for seq, type, data in rows],
        )
        self._conn.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            self._conn.close()

    # --- transactions -----------------------------------------------------------------

    @contextmanager
    def atomic(
        self, keep: Callable[[BaseException], bool] = lambda exc: False
    ) -> Iterator[None]:
        """A transaction; nested uses join the outer one. `keep(exc)` decides whether
        an exception still commits (a declined payment keeps its record)."""
        with self.lock:
            outermost = self._depth == 0
            if outermost:
                self._conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException as exc:
                self._depth -= 1
                if outermost:
                    self._conn.execute("COMMIT" if keep(exc) else "ROLLBACK")
                raise
            else:
                self._depth -= 1
                if outermost:
                    self._conn.execute("COMMIT")

    # --- objects ----------------------------------------------------------------------

    def get(
        self, object_id: str, *, account: str | None = None
    ) -> dict[str, Any] | None:
        """An object by id; with `account`, only if that account owns it."""
        with self.lock:
            row = self._conn.execute(
                "SELECT account, data FROM objects WHERE id = ?", (object_id,)
            ).fetchone()
        if row is None or (account is not None and row[0] != account):
            return None
        return json.loads(row[1])

    def owner(self, object_id: str) -> str | None:
        with self.lock:
            row = self._conn.execute(
                "SELECT account FROM objects WHERE id = ?", (object_id,)
            ).fetchone()
        return row[0] if row else None

    def insert(
        self, obj: dict[str, Any], *, account: str, type: str | None = None
    ) -> None:
        type = type or obj["object"]
        with self.lock:
            self._conn.execute(
                "INSERT INTO objects (id, account, type, created, data, due_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    obj["id"],
                    account,
                    type,
                    # invoice items have a `date` instead of `created`
                    obj.get("created", obj.get("date", 0)),
                    dumps(obj),
                    _due_at(type, obj),
                ),
            )

    def save(self, obj: dict[str, Any]) -> None:
        with self.lock:
            updated = self._conn.execute(
                "UPDATE objects SET data = ?, due_at = ? WHERE id = ?",
                (dumps(obj), _due_at(obj.get("object"), obj), obj["id"]),
            ).rowcount
        if not updated:
            raise KeyError(obj["id"])

    def delete(self, object_id: str) -> None:
        with self.lock:
            self._conn.execute("DELETE FROM objects WHERE id = ?", (object_id,))

    def list(
        self,
        type: str,
        *,
        account: str | None,
        where: Callable[[dict[str, Any]], bool] | None = None,
        invoice: str | None = None,
    ) -> list[dict[str, Any]]:
        """Objects of a type, newest first (Stripe's order); all accounts if None.
        `invoice` keeps those whose `invoice` field is that id, found through an
        index (an invoice's items and payments) rather than by reading every object
        of the type."""
        with self.lock:
            if invoice is not None:
                rows = self._conn.execute(
                    "SELECT data FROM objects WHERE account = ? AND type = ? "
                    "AND json_extract(data, '$.invoice') = ? "
                    "ORDER BY created DESC, seq DESC",
                    (account, type, invoice),
                ).fetchall()
            elif account is None:
                rows = self._conn.execute(
                    "SELECT data FROM objects WHERE type = ? ORDER BY created DESC, "
                    "seq DESC",
                    (type,),
                ).fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT data FROM objects WHERE account = ? AND type = ? "
                    "ORDER BY created DESC, seq DESC",
                    (account, type),
                ).fetchall()
        objects = [json.loads(row[0]) for row in rows]
        return [obj for obj in objects if where is None or where(obj)]

    def invoice_numbered(self, account: str, number: str) -> str | None:
        """The id of the account's invoice with this number, if any (an index)."""
        with self.lock:
            row = self._conn.execute(
                "SELECT id FROM objects WHERE type = 'invoice' AND account = ? "
                "AND json_extract(data, '$.number') = ?",
                (account, number),
            ).fetchone()
        return row[0] if row else None

    def holds_only(self, object_id: str) -> bool:
        """True when the only object is `object_id` and nothing else was kept (no
        idempotency key, no webhook delivery): a new emulator's state."""
        with self.lock:
            return not any(
                self._conn.execute(sql, args).fetchone()
                for sql, args in (
                    ("SELECT 1 FROM objects WHERE id != ? LIMIT 1", (object_id,)),
                    ("SELECT 1 FROM idempotency LIMIT 1", ()),
                    ("SELECT 1 FROM deliveries LIMIT 1", ()),
                )
            )

    def due(self, now: int) -> list[tuple[str, str, dict[str, Any]]]:
        """(account, type, object) of the objects with automatic work due by `now`."""
        with self.lock:
            rows = self._conn.execute(
                "SELECT account, type, data FROM objects "
                "WHERE due_at IS NOT NULL AND due_at <= ? ORDER BY due_at, seq",
                (now,),
            ).fetchall()
        return [(account, type, json.loads(data)) for account, type, data in rows]

    def next_due_at(self) -> int | None:
        """When the next automatic work falls due (None: there is none)."""
        with self.lock:
            row = self._conn.execute(
                "SELECT MIN(due_at) FROM objects WHERE due_at IS NOT NULL"
            ).fetchone()
        return row[0]

    # --- idempotency ------------------------------------------------------------------

    def idempotent_get(
        self, scope: str, key: str
    ) -> tuple[str, str, str, int, str, int] | None:
        with self.lock:
            return self._conn.execute(
                "SELECT method, path, fingerprint, status, body, created FROM "
                "idempotency "
                "WHERE scope = ? AND key = ?",
                (scope, key),
            ).fetchone()

    def idempotent_put(
        self,
        scope: str,
        key: str,
        method: str,
        path: str,
        fingerprint: str,
        status: int,
        body: str,
        created: int,
    ) -> None:
        with self.lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (scope, key, method, path, fingerprint, status, body, created),
            )

    def idempotent_expire(self, before: int) -> None:
        with self.lock:
            self._conn.execute("DELETE FROM idempotency WHERE created < ?", (before,))

    # --- webhook deliveries -----------------------------------------------------------

    def delivery_add(
        self, event_id: str, url: str, event_created: int, due: int
    ) -> None:
        with self.lock:
            self._conn.execute(
                "INSERT INTO deliveries (event_id, url, status, next_attempt_at, "
                "event_created) "
                "VALUES (?, ?, 'pending', ?, ?)",
                (event_id, url, due, event_created),
            )

    def deliveries_due(self, now: int | None) -> list[dict[str, Any]]:
        """Pending deliveries due by `now` (all pending ones if None)."""
        with self.lock:
            cursor = self._conn.execute(
                "SELECT * FROM deliveries WHERE status = 'pending' "
                "AND (? IS NULL OR next_attempt_at <= ?) ORDER BY next_attempt_at, seq",
                (now, now),
            )
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def deliveries(
        self, *, event_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        with self.lock:
            cursor = self._conn.execute(
                "SELECT * FROM deliveries WHERE (? IS NULL OR event_id = ?) "
                "ORDER BY seq DESC LIMIT ?",
                (event_id, event_id, limit),
            )
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def delivery_update(self, seq: int, **fields: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self.lock:
            self._conn.execute(
                f"UPDATE deliveries SET {assignments} WHERE seq = ?",  # noqa: S608 - our names
                (*fields.values(), seq),
            )

    def next_delivery_at(self) -> int | None:
        with self.lock:
            row = self._conn.execute(
                "SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'"
            ).fetchone()
        return row[0] if row else None

    # --- meta -------------------------------------------------------------------------

    def meta_get(self, key: str, default: str | None = None) -> str | None:
        with self.lock:
            row = self._conn.execute(
                "SELECT value FROM meta WHERE key = ?", (key,)
            ).fetchone()
        return row[0] if row else default

    def meta_set(self, key: str, value: str) -> None:
        with self.lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value)
            )

    def reset(self) -> None:
        with self.lock:
            for table in ("objects", "idempotency", "deliveries", "meta"):
                self._conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
