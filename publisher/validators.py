"""Field rules of APIs, shared by the forms and the services."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_slug

from apimon import egress
from apimon.validators import validate_single_line

VERSION_RE = re.compile(r"^v?\d+(\.\d+){0,2}$")
VERSION_HELP = "v1, v2.1 or 1.0.0: an optional “v”, then one to three numbers."
MAX_TAGS = 20
TAG_MAX_LENGTH = 40

_url = URLValidator(schemes=["http", "https"])


def validate_api_version(value: str) -> None:
    if not VERSION_RE.match(value or ""):
        raise ValidationError(
            f"Use a version like {VERSION_HELP}", code="invalid_version"
        )


def validate_context(value: str) -> None:
    validate_slug(value)


def validate_backend_url(value: str) -> None:
    """An absolute http(s) URL with a host: no ftp:, javascript: or bare hosts."""
    message = (
        "Enter an absolute http:// or https:// URL, e.g. https://api.example.com/v1"
    )
    parts = urlsplit(value or "")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValidationError(message, code="invalid_backend_url")
    try:
        _url(value)
    except ValidationError:
        raise ValidationError(message, code="invalid_backend_url") from None
    # Without DNS (a write must not wait on the network): IP literals and localhost
    # names; the forms resolve names (validate_backend_address) and the gateway checks
    # every address it connects to.
    _refuse(egress.url_refusal(value, resolve=False))


def validate_backend_address(value: str) -> None:
    """validate_backend_url, then the egress policy with the host name resolved: a name
    that does not resolve, or resolves to an address the gateway may not reach, is
    refused. For forms (it may wait for DNS, a few seconds at most)."""
    validate_backend_url(value)
    _refuse(egress.url_refusal(value))


def _refuse(refusal: egress.Refusal | None) -> None:
    if refusal is not None:
        raise ValidationError(refusal.message, code=refusal.code)


def parse_tags(text: str) -> list[str]:
    """ "Weather, forecast ,weather" → ["weather", "forecast"]: comma-separated,
    trimmed, lower-cased (so "Weather" and "weather" are one tag), in order, once."""
    names: list[str] = []
    for raw in (text or "").split(","):
        name = " ".join(raw.split()).lower()
        if name and name not in names:
            names.append(name)
    return names


def validate_tags(names: list[str]) -> None:
    for name in names:
        validate_single_line(name)
    if len(names) > MAX_TAGS:
        raise ValidationError(f"Use at most {MAX_TAGS} tags.")
    long = [n for n in names if len(n) > TAG_MAX_LENGTH]
    if long:
        raise ValidationError(
            f"A tag can have at most {TAG_MAX_LENGTH} characters: {long[0][:50]}…"
        )
