"""The metering gateway and its verify endpoint (a raw ASGI app, outside Django's
views) never fail on what a caller sends: hostile paths, keys, headers, queries
and bodies, with a real subscription's key or without. An exception in the app
would surface here (the ASGI transport raises it); a 5xx the gateway makes itself
must be one of its documented refusals."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import EXAMPLES
from tests.fuzz.strategies import text

pytestmark = pytest.mark.redis

# The gateway's own 5xx answers (docs/decisions.md, "Refusal codes").
DOCUMENTED_5XX = {
    "api_blocked",
    "backend_unreachable",
    "backend_timeout",
    "busy",
    "metering_unavailable",
}

SEGMENTS = st.one_of(
    st.sampled_from(["acme", "weather", "v1", "globex", "..", ".", "%00", "%2e%2e"]),
    # At most 200 characters: longer URLs are refused by the HTTP client itself.
    text.map(lambda t: "".join(c for c in t[:200] if c not in "/?#") or "x"),
)


def _wire(value: str) -> bytes:
    """What can travel in a header: latin-1 without controls (a server drops the
    rest before any app sees it)."""
    return bytes(
        c for c in value.encode("latin-1", "ignore") if c >= 0x20 and c != 0x7F
    )


def header_value():
    return text.map(_wire)


def test_the_gateway_never_fails_on_what_a_caller_sends(metering, gateway):
    @settings(max_examples=EXAMPLES * 10)
    @given(
        prefix=st.sampled_from(["/gateway/", "/gateway-verify/"]),
        route=st.lists(SEGMENTS, min_size=0, max_size=3),
        rest=st.lists(SEGMENTS, max_size=3),
        method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
        key=st.one_of(st.just(metering.key), header_value(), st.none()),
        scheme=st.sampled_from(["Bearer", "bearer", "Basic", "", "X-API-Key"]),
        headers=st.dictionaries(
            st.sampled_from(
                ["X-Original-URI", "Cookie", "Content-Type", "X-Forwarded-For"]
            ),
            header_value(),
            max_size=2,
        ),
        query=st.dictionaries(
            text.map(lambda t: t[:100]), text.map(lambda t: t[:500]), max_size=2
        ),
        body=st.binary(max_size=200),
    )
    def call(prefix, route, rest, method, key, scheme, headers, query, body):
        segments = (route or ["acme", "weather", "v1"]) + rest
        path = prefix + "/".join(quote(segment, safe="%") for segment in segments)
        headers = dict(headers)
        if key is not None:
            raw = key if isinstance(key, bytes) else _wire(key)
            if scheme == "X-API-Key":
                headers["X-API-Key"] = raw
            else:
                headers["Authorization"] = scheme.encode() + b" " + raw
        response = gateway.request(
            method, path, headers=headers, params=query, content=body
        )
        if response.status_code >= 500 and response.headers.get(
            "content-type", ""
        ).startswith("application/json"):
            error = response.json().get("error", {})
            if "code" in error:
                assert error["code"] in DOCUMENTED_5XX, (path, response.text[:300])

    call()
