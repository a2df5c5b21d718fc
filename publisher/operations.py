"""Weighted operations of a meter: "POST /search = 5 units", parsed, checked and
matched.

Pure functions over plain values (no ORM), used by the meter form (parse and check
what the publisher typed) and by the gateway and the verify endpoint (match a call).
A meter keeps its operations as a list of ``{"method", "path", "units"}``; a line
typed as an OpenAPI ``operationId units`` is resolved against the API's document
when the meter is saved and kept as its method and path plus ``"operation_id"``
(so the form shows the line as typed, and matching never looks at the id). The
gateway compiles that list once into a `Matcher` (a tree of path segments per
method) and matches each call by walking the call's segments: no regular
expression per request, whatever the number of operations.

Rules (docs/metering.md, "Weighted operations"):
- a path template is literal segments and ``{name}`` segments, each matching one
  non-empty segment; trailing slashes do not matter;
- a literal segment wins over a ``{name}`` segment at the same place (``GET
  /items/export`` beats ``GET /items/{id}``), and a method beats ``*`` (any method);
- a call that matches no operation weighs `UNLISTED` (1);
- ``createCompletion 5`` weighs the operation of that ``operationId`` in the API's
  OpenAPI document (its method and path template, resolved when the meter is saved,
  and again when the document is: `reresolve`; an id that vanished keeps its last
  resolution, and `stale` says so for the pages).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import islice

UNLISTED = 1
MAX_UNITS = 1_000_000
MAX_OPERATIONS = 200
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*")
SUGGEST_AMONG = 2_000  # ids compared with an unknown one, for "did you mean"
SHAPE = "write METHOD /path units (POST /search 5) or operationId units (search 5)."
# operationId → (METHOD, path template) of the API's OpenAPI document; None for an
# API without a document.
OperationIds = Mapping[str, tuple[str, str]] | None


class OperationsError(ValueError):
    """What is wrong with the typed operations, one message per bad line."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def _is_param(segment: str) -> bool:
    return len(segment) > 2 and segment[0] == "{" and segment[-1] == "}"


def parse(text: str, operation_ids: OperationIds = None) -> list[dict]:
    """Lines of ``METHOD /path units`` or ``operationId units`` (blank lines and
    ``#`` comments skipped) into the stored list, each operationId resolved by
    `operation_ids`; raises OperationsError naming each bad line."""
    operations: list[dict] = []
    errors: list[str] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        operation_id = ""
        typo = len(parts) == 2 and (
            parts[1].startswith("/")
            or (parts[0].upper() in METHODS and parts[0] not in (operation_ids or {}))
        )
        if len(parts) == 2 and not typo:
            operation_id, units = parts
            # Suggestions for the first few unknown ids only: each is a pass over
            # the document's ids.
            found = _resolve(operation_id, operation_ids, suggest=len(errors) < 10)
            if isinstance(found, str):
                errors.append(f"Line {number}: {found}")
                continue
            method, path = found
        elif len(parts) == 3:
            method, path, units = parts[0].upper(), parts[1], parts[2]
        else:
            errors.append(f"Line {number}: {SHAPE}")
            continue
        problem = _problem(method, path, units)
        if problem:
            if operation_id:
                problem = f"{operation_id[:80]} is {method} {path[:300]}: {problem}"
            errors.append(f"Line {number}: {problem}")
            continue
        if shape_of(method, path) in seen:
            label = (
                f"{operation_id} ({method} {path})"
                if operation_id
                else (f"{method} {path}")
            )
            errors.append(f"Line {number}: {label} is listed twice.")
            continue
        seen.add(shape_of(method, path))
        operation = {"method": method, "path": path, "units": int(units)}
        if operation_id:
            operation["operation_id"] = operation_id
        operations.append(operation)
    if len(operations) > MAX_OPERATIONS:
        errors.append(f"List at most {MAX_OPERATIONS} operations.")
    if errors:
        raise OperationsError(errors)
    return operations


def shape_of(method: str, path: str) -> tuple[str, tuple[str, ...]]:
    """What two operations share when they weigh the same calls."""
    return method, tuple("{}" if _is_param(s) else s for s in _segments(path))


def _resolve(
    operation_id: str, operation_ids: OperationIds, *, suggest: bool = False
) -> tuple[str, str] | str:
    """(METHOD, path) of an operationId, or what is wrong (with `suggest`, the
    known ids closest to it first)."""
    shown = operation_id[:80]
    if operation_ids is None:
        return (
            f"{shown} would be an OpenAPI operationId, but this API has no OpenAPI "
            "document: add one on the API's page, or write METHOD /path units."
        )
    found = operation_ids.get(operation_id)
    if found is not None:
        return found[0].upper(), found[1]
    if not operation_ids:
        return f"The API's OpenAPI document names no operationId, so not {shown}."
    close = (
        difflib.get_close_matches(
            operation_id[:80], list(islice(operation_ids, SUGGEST_AMONG)), n=3
        )
        if suggest
        else []
    )
    known = [*close, *(i for i in islice(operation_ids, 5) if i not in close)][:5]
    more = ", …" if len(operation_ids) > len(known) else ""
    return (
        f"No operation of the API's OpenAPI document has the operationId {shown} "
        f"(it has {', '.join(i[:80] for i in known)}{more})."
    )


def reresolve(operations: list[dict], operation_ids: OperationIds) -> list[dict]:
    """The stored list with each operationId resolved again by a new document. An id
    the document no longer has, or whose new operation would weigh the same calls
    as another line, keeps its last resolution (`stale` reports it)."""
    result = [dict(o) for o in operations]
    taken = {shape_of(o["method"], o["path"]) for o in result}
    for op in result:
        found = _resolve(op.get("operation_id") or "", operation_ids)
        if not op.get("operation_id") or isinstance(found, str):
            continue
        method, path = found
        if (method, path) == (op["method"], op["path"]):
            continue
        if _problem(method, path, "0") or shape_of(method, path) in taken:
            continue
        taken.discard(shape_of(op["method"], op["path"]))
        taken.add(shape_of(method, path))
        op["method"], op["path"] = method, path
    return result


def stale(operations: list[dict], operation_ids: OperationIds) -> list[str]:
    """A sentence per operationId line that no longer weighs its operation of the
    document: the meter still weighs its last resolution."""
    notes = []
    for op in operations:
        operation_id = op.get("operation_id")
        if not operation_id:
            continue
        was = f"{op['method']} {op['path']}"
        found = _resolve(operation_id, operation_ids)
        if isinstance(found, str):
            why = (
                "the API has no OpenAPI document any more"
                if operation_ids is None
                else "it is no longer in the API's OpenAPI document"
            )
        elif found != (op["method"], op["path"]):
            why = (
                f"the document now has it as {found[0]} {found[1]}, which another "
                "line weighs or a meter cannot match"
            )
        else:
            continue
        notes.append(
            f"{operation_id}: {why}; the meter still weighs {was} (its last "
            "resolution). Edit the meter to change the line."
        )
    return notes


def _problem(method: str, path: str, units: str) -> str | None:
    if method not in METHODS:
        return f"{method[:20]} is not a method ({', '.join(METHODS)})."
    if not path.startswith("/") or len(path) > 300:
        return "A path starts with / (at most 300 characters)."
    for segment in _segments(path):
        if ("{" in segment or "}" in segment) and not _is_param(segment):
            return f"{segment[:40]} is neither a literal segment nor a {{name}}."
    if not units.isascii() or not units.isdigit() or int(units) > MAX_UNITS:
        return f"Units are a whole number from 0 to {MAX_UNITS:,}."
    return None


def as_text(operations: list[dict]) -> str:
    """The stored list as the form shows it."""
    return "\n".join(
        f"{o['operation_id']} {o['units']}"
        if o.get("operation_id")
        else f"{o['method']} {o['path']} {o['units']}"
        for o in operations
    )


@dataclass(slots=True)
class _Node:
    literal: dict[str, _Node] = field(default_factory=dict)
    param: _Node | None = None
    units: int | None = None


@dataclass(slots=True)
class Matcher:
    """Operations compiled for matching: a segment tree per method."""

    trees: dict[str, _Node] = field(default_factory=dict)

    @classmethod
    def compile(cls, operations: list[dict]) -> Matcher:
        matcher = cls()
        for op in operations:
            node = matcher.trees.setdefault(op["method"], _Node())
            for segment in _segments(op["path"]):
                if _is_param(segment):
                    node.param = node.param or _Node()
                    node = node.param
                else:
                    node = node.literal.setdefault(segment, _Node())
            node.units = int(op["units"])
        return matcher

    def units(self, method: str, path: str) -> int:
        """The weight of a call of `method` on `path` (the part after the API's
        version in the gateway's URL)."""
        if not self.trees:
            return UNLISTED
        segments = _segments(path)
        for tree_method in (method.upper(), "*"):
            tree = self.trees.get(tree_method)
            if tree is not None:
                found = _walk(tree, segments, 0)
                if found is not None:
                    return found
        return UNLISTED


def _walk(node: _Node, segments: list[str], i: int) -> int | None:
    if i == len(segments):
        return node.units
    child = node.literal.get(segments[i])
    if child is not None:
        found = _walk(child, segments, i + 1)
        if found is not None:
            return found
    if node.param is not None:
        return _walk(node.param, segments, i + 1)
    return None
