"""Weighted operations of a meter: "POST /search = 5 units", parsed, checked and
matched.

Pure functions over plain values (no ORM), used by the meter form (parse and check
what the publisher typed) and by the gateway and the verify endpoint (match a call).
A meter keeps its operations as a list of ``{"method", "path", "units"}``; the
gateway compiles that list once into a `Matcher` (a tree of path segments per
method) and matches each call by walking the call's segments: no regular
expression per request, whatever the number of operations.

Rules (docs/metering.md, "Weighted operations"):
- a path template is literal segments and ``{name}`` segments, each matching one
  non-empty segment; trailing slashes do not matter;
- a literal segment wins over a ``{name}`` segment at the same place (``GET
  /items/export`` beats ``GET /items/{id}``), and a method beats ``*`` (any method);
- a call that matches no operation weighs `UNLISTED` (1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

UNLISTED = 1
MAX_UNITS = 1_000_000
MAX_OPERATIONS = 200
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*")


class OperationsError(ValueError):
    """What is wrong with the typed operations, one message per bad line."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def _is_param(segment: str) -> bool:
    return len(segment) > 2 and segment[0] == "{" and segment[-1] == "}"


def parse(text: str) -> list[dict]:
    """Lines of ``METHOD /path units`` (blank lines and ``#`` comments skipped) into
    the stored list; raises OperationsError naming each bad line."""
    operations: list[dict] = []
    errors: list[str] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3:
            errors.append(
                f"Line {number}: write METHOD /path units, e.g. POST /search 5."
            )
            continue
        method, path, units = parts[0].upper(), parts[1], parts[2]
        problem = _problem(method, path, units)
        if problem:
            errors.append(f"Line {number}: {problem}")
            continue
        shape = (method, tuple("{}" if _is_param(s) else s for s in _segments(path)))
        if shape in seen:
            errors.append(f"Line {number}: {method} {path} is listed twice.")
            continue
        seen.add(shape)
        operations.append({"method": method, "path": path, "units": int(units)})
    if len(operations) > MAX_OPERATIONS:
        errors.append(f"List at most {MAX_OPERATIONS} operations.")
    if errors:
        raise OperationsError(errors)
    return operations


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
    return "\n".join(f"{o['method']} {o['path']} {o['units']}" for o in operations)


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
