"""JSON from strangers: parsed with a nesting limit.

Python's parser recurses once per nested array or object, so a body of 100,000
`[` raises RecursionError (a 500) instead of a clear refusal, and a document a few
hundred levels deep parses but breaks whatever walks it next (validators, the
database's JSON encoder). `loads` refuses a document nested deeper than
`MAX_DEPTH` before parsing it, with a code an API answer can carry.

The depth is found by two regular-expression passes over the text (strings taken
out, then all but brackets) and a count of the brackets left, linear in the size of the body, which the caller bounds
(Django's DATA_UPLOAD_MAX_MEMORY_SIZE, or the OpenAPI upload limit).
"""

from __future__ import annotations

import json
import re
from typing import Any

# Generous for every document apimon reads: Stripe events nest about 10 levels, an
# ingest batch 3, an OpenAPI document rarely 30.
MAX_DEPTH = 64

# A JSON string (escapes included), and what is not a bracket.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class JsonBodyError(ValueError):
    """A body that is not acceptable JSON; `code` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def nesting_depth(text: str, *, stop_after: int | None = None) -> int:
    """How deeply the arrays and objects of `text` nest (0 for a scalar). Stops
    counting once the depth passes `stop_after`."""
    depth = deepest = 0
    # Strings out, then everything but brackets (both in C): the loop sees brackets.
    for char in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_after is not None and deepest > stop_after:
                    break
        elif char in "]}":
            depth -= 1
    return deepest


def too_deep_message(max_depth: int) -> str:
    return f"The JSON is nested deeper than {max_depth} levels."


def loads(body: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `body` as JSON. Raises JsonBodyError: `bad_json` (not UTF-8 or not
    JSON) or `too_deep`."""
    if isinstance(body, bytes | bytearray):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise JsonBodyError("bad_json", "The body is not UTF-8 text.") from None
    if nesting_depth(body, stop_after=max_depth) > max_depth:
        raise JsonBodyError("too_deep", too_deep_message(max_depth))
    try:
        return json.loads(body)
    except ValueError as exc:
        raise JsonBodyError("bad_json", f"The body is not JSON: {exc}") from None
    except RecursionError:  # not reached within the limit; a last guard
        raise JsonBodyError("too_deep", too_deep_message(max_depth)) from None


def has_nul(data: Any) -> bool:
    """Whether a parsed document holds a NUL character in any string or key:
    PostgreSQL's jsonb and text columns cannot store one."""
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return True
        elif isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and "\x00" in key:
                    return True
                stack.append(value)
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return False
