"""Typed, strict readers for environment variables.

Every reader takes the variable's name and a default. A value that cannot be read
raises ImproperlyConfigured naming the variable, so a typo in a deployment fails at
start-up instead of running with a silently wrong setting. Secrets can come from a
file: `SECRET_KEY_FILE=/run/secrets/key` is read when `SECRET_KEY` is unset.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_MISSING = object()


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is not None:
        return value
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"{name}_FILE={file_name!r} cannot be read: {exc.strerror}"
            ) from exc
    return None


def env_str(name: str, default: str | object | None = _MISSING) -> str | None:
    value = _raw(name)
    if value is None:
        if default is _MISSING:
            raise ImproperlyConfigured(f"{name} must be set")
        return default  # type: ignore[return-value]
    return value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean (use one of 1/0, true/false, yes/no, on/off)"
    )


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value.strip())
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from exc
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} must be at most {maximum}")
    return number


def env_port(name: str, default: int) -> int:
    """A TCP port, 1–65535."""
    return env_int(name, default, minimum=1, maximum=65535)


def env_float_seconds(name: str, default: float) -> float:
    """A duration in seconds (not money: money is never a float in apimon)."""
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value.strip())
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a number of seconds"
        ) from exc
    if not math.isfinite(number):
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a finite number of seconds"
        )
    if number <= 0:
        raise ImproperlyConfigured(f"{name}={value!r} must be a positive duration")
    return number


def env_decimal(
    name: str,
    default: Decimal,
    *,
    minimum: Decimal | None = None,
    maximum: Decimal | None = None,
) -> Decimal:
    """A finite decimal number (NaN and Infinity are refused), optionally in a range."""
    value = _raw(name)
    if value is None:
        return default
    try:
        number = Decimal(value.strip())
    except InvalidOperation as exc:
        raise ImproperlyConfigured(f"{name}={value!r} is not a decimal number") from exc
    if not number.is_finite():
        raise ImproperlyConfigured(f"{name}={value!r} is not a finite decimal number")
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={value!r} must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={value!r} must be at most {maximum}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(
    name: str, default: str, choices: set[str], *, ignore_case: bool = False
) -> str:
    """One of ``choices``; with ``ignore_case`` any case, returned as spelled there."""
    value = _raw(name)
    if value is None:
        return default
    if ignore_case:
        by_fold = {choice.casefold(): choice for choice in choices}
        if value.strip().casefold() in by_fold:
            return by_fold[value.strip().casefold()]
    elif value in choices:
        return value
    raise ImproperlyConfigured(
        f"{name}={value!r} is not one of: {', '.join(sorted(choices))}"
    )


def env_url(
    name: str,
    default: str,
    *,
    schemes: tuple[str, ...] = ("http", "https"),
) -> str:
    """An absolute URL with one of ``schemes`` and a host, without a trailing slash."""
    value = _raw(name)
    if value is None:
        return default.rstrip("/")
    url = value.strip()
    parts = urlsplit(url)
    expected = " or ".join(f"{scheme}://" for scheme in schemes)
    if parts.scheme.lower() not in schemes or not parts.hostname:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a URL starting with {expected} and a host"
        )
    try:
        parts.port  # noqa: B018  (raises on a port out of range or not a number)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r} has a bad port: {exc}") from exc
    if parts.query or parts.fragment:
        raise ImproperlyConfigured(
            f"{name}={value!r} must not have a query or a fragment"
        )
    return url.rstrip("/")


def env_networks(name: str, default: list[str]) -> list[str]:
    """A comma-separated list of IP networks in CIDR notation (``10.0.0.0/8``,
    ``fd12:3456::/48``; a bare address is one host), normalized."""
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(str(ipaddress.ip_network(item)))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not an IP network in CIDR notation "
                f"(e.g. 10.0.0.0/8): {exc}"
            ) from exc
    return networks


_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)


def env_host(name: str, default: str | None) -> str | None:
    """A host name or IP address alone (no scheme, port or path), lower-cased, without
    a trailing dot or an IPv6 address's brackets; an empty value is unset."""
    value = _raw(name)
    if value is None:
        return default
    host = value.strip().lower().rstrip(".")
    if not host:
        return None
    try:
        # An IP address, IPv6 without its brackets.
        return str(ipaddress.ip_address(host.removeprefix("[").removesuffix("]")))
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(host):
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a host name (give the name alone, without "
            "a scheme, port or path, e.g. gateway.example.com)"
        )
    return host


_RATE = re.compile(r"(?P<amount>\d+)/(?P<period>\d*[smhd])")
_PERIOD_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day"}


def env_rate(name: str, default: str) -> str:
    """A rate limit as `<amount>/<period>`, e.g. `20/h` (20 per hour) or `5/10m`
    (period: s, m, h or d, with an optional number), or `off`. Returned as given
    (`""` for off), the form django-allauth's rate limits take."""
    value = _raw(name)
    text = (default if value is None else value).strip()
    if text.lower() == "off":
        return ""
    match = _RATE.fullmatch(text)
    if not match or int(match["amount"]) < 1:
        raise ImproperlyConfigured(
            f"{name}={text!r} is not a rate like 20/h (a number per s, m, h or d, "
            "e.g. 5/10m) or off"
        )
    return text


def describe_rate(rate: str) -> str:
    """`20/h` → "20 per hour", `5/10m` → "5 per 10 minutes"."""
    match = _RATE.fullmatch(rate)
    if not match:
        return rate
    period = match["period"]
    number, unit = period[:-1], _PERIOD_WORDS[period[-1]]
    if number and number != "1":
        return f"{match['amount']} per {number} {unit}s"
    return f"{match['amount']} per {unit}"
