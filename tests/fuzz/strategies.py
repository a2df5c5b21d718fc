"""Hostile input for forms and JSON bodies."""

from __future__ import annotations

import json

from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import strategies as st

SPECIAL = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\r\n",
    "\t",
    "\x1b[31m",
    "0",
    "-1",
    "1.5",
    "1e308",
    "-1e-308",
    "NaN",
    "Infinity",
    "9" * 40,
    str(2**31),
    str(2**63),
    str(-(2**63) - 1),
    "0000-01",
    "0000-00-00",
    "9999-12",
    "9999-12-31",
    "0001-01-01",
    "2027-02-30",
    "10000-01-01",
    "null",
    "true",
    "[]",
    "{}",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "http://169.254.169.254/",
    "javascript:alert(1)",
    "\u202eevil",
    "😀" * 3,
    "é" * 300,
    "%00",
    "' OR 1=1 --",
]

LONG = st.builds(
    lambda chunk, n: chunk * n,
    st.sampled_from(["x", "[", "- ", "\x00", "é", "{", "> "]),
    st.integers(min_value=200, max_value=20_000),
)

text = st.one_of(
    st.sampled_from(SPECIAL),
    st.text(max_size=40),  # any code point but surrogates: controls and NUL too
    # Text with a NUL or another control character inside: PostgreSQL cannot store
    # a NUL, and single-line fields should not take the others.
    st.tuples(
        st.text(max_size=10), st.sampled_from("\x00\x01\n\x7f"), st.text(max_size=10)
    ).map("".join),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.from_regex(r"-?\d{1,6}-\d{1,3}(-\d{1,3})?", fullmatch=True),
    LONG,
)


def field_value(options: list[str]):
    """A value for a field: one it offers (to get past the first check), or hostile
    text, or several values at once."""
    choices = [text]
    if options:  # twice as likely: most checks are past the first one
        choices[:0] = [st.sampled_from(options)] * 2
    single = st.one_of(*choices)
    return st.one_of(single, single, st.lists(single, min_size=2, max_size=3))


def upload():
    """A file for a file field: documents of the names the forms accept or not."""
    contents = st.one_of(
        st.binary(max_size=200),
        text.map(lambda t: t.encode("utf-8", "surrogatepass")),
        json_values().map(lambda v: json.dumps(v).encode()),
        st.integers(min_value=1, max_value=5000).map(lambda n: (b"[" * n) + (b"]" * n)),
    )
    names = st.sampled_from(["a.json", "a.yaml", "a.yml", "a.txt", "", "x" * 300])
    return st.builds(
        lambda name, content: SimpleUploadedFile(name or "f", content), names, contents
    )


def form_data(fields):
    """Some of the route's fields (missing ones are part of the test), each with a
    value, plus a few names no form knows."""
    optional = {name: field_value(options) for name, options in fields.options.items()}
    for name in fields.files:
        optional[name] = upload()
    extra = st.dictionaries(
        st.text(min_size=1, max_size=12), field_value([]), max_size=2
    )
    return st.builds(
        lambda known, unknown: {**unknown, **known},
        st.fixed_dictionaries({}, optional=optional),
        extra,
    )


def json_values(leaves=None):
    """Any JSON value, with hostile strings and numbers at the leaves."""
    scalars = leaves or st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        text,
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(
                st.one_of(text, st.sampled_from(KEYS)), children, max_size=5
            ),
        ),
        max_leaves=20,
    )


# Keys the JSON endpoints read, so that generated objects reach their checks.
KEYS = [
    "id",
    "type",
    "object",
    "account",
    "api_version",
    "livemode",
    "created",
    "data",
    "metadata",
    "events",
    "subscription",
    "key",
    "api",
    "at",
    "count",
    "idempotency_key",
]
