"""Structured logs: every log line carries the request id, the organization and the
user of the request it was written for (`-` outside a request).

- `RequestContextMiddleware` (Django) takes the caller's `X-Request-ID` when it is
  a sane token (letters, digits, `.`, `_`, `-`, `:`, at most 128) or makes one,
  returns it in the response's `X-Request-ID`, and records the signed-in user; the
  tenant resolver (`apimon.tenancy`) records the organization.
- The gateway (`gateway.proxy`) does the same on its hot path with `bind()` and
  passes the id on to the API's backend.
- `ContextFilter` copies them onto each record; the `keyvalue` formatter in
  settings.LOGGING prints `request_id=… org=… user=…` before the message.

Context variables keep concurrent requests of one process apart (threads and
asyncio tasks each see their own).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
_VALID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

request_id: ContextVar[str] = ContextVar("request_id", default="-")
organization: ContextVar[str] = ContextVar("organization", default="-")
user: ContextVar[str] = ContextVar("user", default="-")


def accept_or_new(value: str | bytes | None) -> str:
    """The caller's request id if it is a sane token, else a new one."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if value and _VALID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def bind(*, rid: str, org: str = "-", uid: str = "-") -> None:
    """Set the context of the current request (thread or asyncio task)."""
    request_id.set(rid)
    organization.set(org)
    user.set(uid)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.org = organization.get()
        record.user = user.get()
        return True


class RequestContextMiddleware:
    """Binds the request's id and user for its log lines; returns the id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rid = accept_or_new(request.headers.get(HEADER))
        signed_in = getattr(request, "user", None)
        uid = str(signed_in.pk) if signed_in and signed_in.is_authenticated else "-"
        bind(rid=rid, uid=uid)
        request.request_id = rid
        try:
            response = self.get_response(request)
        finally:
            bind(rid="-")
        response[HEADER] = rid
        return response
