"""Django's database sessions, read in plain SQL (settings.SESSION_ENGINE).

Every signed-in page reads its session first. Django's `db` backend reads it with
`Session.objects.get(...)`, whose query the ORM builds and compiles again on every
request, which costs more than PostgreSQL takes to answer it. This reads the same
row with the same conditions (the key, not expired) in a statement written once;
writing, deleting and everything else is Django's `db` backend as it is.
"""

from __future__ import annotations

from functools import cache

from django.contrib.sessions.backends import db
from django.db import connections, router
from django.utils import timezone


class SessionStore(db.SessionStore):
    def _get_session_from_db(self):
        key = self.session_key
        if key is None:  # as `objects.get(session_key=None)`: no row
            self._session_key = None
            return None
        using = router.db_for_read(self.model)
        connection = connections[using]
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        with connection.cursor() as cursor:
            cursor.execute(_select(using), [key, now])
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        return self.model(session_key=key, session_data=row[0])


@cache
def _select(using: str) -> str:
    from django.contrib.sessions.models import Session

    quote = connections[using].ops.quote_name
    meta = Session._meta
    column = {f.name: quote(f.column) for f in meta.concrete_fields}
    return (
        f"SELECT {column['session_data']} FROM {quote(meta.db_table)} "  # noqa: S608
        f"WHERE {column['session_key']} = %s AND {column['expire_date']} > %s"
    )
