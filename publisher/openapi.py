"""OpenAPI documents: parse and validate an upload, list its operations.

A publisher may attach an OpenAPI 3.x or Swagger 2.0 document to an API, as JSON or
YAML. `parse_openapi` turns the upload into the plain JSON-compatible dict stored in
`Api.openapi_spec` or raises `ValidationError` with a message for the form field;
`openapi_operations` lists (method, path, summary) for the publisher page and the
store.

Safety, because the document comes from a tenant:
- at most `MAX_BYTES`;
- YAML is read with `safe_load` and without anchors/aliases, so a "billion laughs"
  document cannot expand into gigabytes when stored as JSON;
- only local `$ref`s ("#/components/…") are accepted: the validator would otherwise
  fetch remote references from the server (a request forgery vector);
- nested at most `apimon.jsonbody.MAX_DEPTH` levels (JSON and YAML alike): deeper
  documents would exhaust Python's recursion in the parser or the validator;
- no NUL character, which PostgreSQL cannot store in a JSON column.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import yaml
from django.core.exceptions import ValidationError

from apimon import jsonbody

MAX_BYTES = 1024 * 1024
EXTENSIONS = (".json", ".yaml", ".yml")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@dataclass(frozen=True)
class Operation:
    method: str  # upper case: "GET"
    path: str
    summary: str
    operation_id: str = ""
    deprecated: bool = False
    # Its required query parameters as an example query string ("city=Lisbon"):
    # each parameter's `example` (or its schema's) or, without one, "<name>".
    example_query: str = ""


TOO_DEEP = (
    f"The document is nested deeper than {jsonbody.MAX_DEPTH} levels: "
    "apimon does not read it."
)


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (`*name`) and nesting deeper than
    `jsonbody.MAX_DEPTH`: see the module docstring."""

    _depth = 0

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(
                problem="YAML aliases (*name) are not accepted",
                problem_mark=event.start_mark,
            )
        # Only sequences and mappings nest (as arrays and objects count in JSON).
        nested = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        if not nested:
            return super().compose_node(parent, index)
        if self._depth >= jsonbody.MAX_DEPTH:
            raise ValidationError(TOO_DEEP)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_openapi(content: bytes | str, filename: str = "") -> dict[str, Any]:
    """The validated document as a JSON-compatible dict, or ValidationError."""
    if filename and not filename.lower().endswith(EXTENSIONS):
        raise ValidationError("Upload a .json, .yaml or .yml file.")
    if isinstance(content, str):
        content = content.encode()
    if len(content) > MAX_BYTES:
        raise ValidationError(
            f"The document is larger than {MAX_BYTES // 1024} KB.", code="too_big"
        )
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError("The document is not UTF-8 text.") from None
    if not text.strip():
        raise ValidationError("The document is empty.")

    data = _load(text, json_only=filename.lower().endswith(".json"))
    if not isinstance(data, dict):
        raise ValidationError("The document must be a JSON or YAML object (a mapping).")
    # YAML gives dates and integer keys (`200:`); the stored document is JSON.
    data = json.loads(json.dumps(data, default=str))
    if jsonbody.has_nul(data):
        raise ValidationError(
            "The document contains a NUL character (\\u0000), which cannot be stored."
        )
    _check_version(data)
    for ref in _refs(data):
        if not ref.startswith("#"):
            raise ValidationError(
                f"Only local references (#/…) are accepted, not {ref[:80]!r}."
            )
    _validate(data)
    return data


def _load(text: str, *, json_only: bool) -> Any:
    if json_only:
        if jsonbody.nesting_depth(text, stop_after=jsonbody.MAX_DEPTH) > (
            jsonbody.MAX_DEPTH
        ):
            raise ValidationError(TOO_DEEP)
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from None
    try:
        # JSON is YAML, so pasted text of either kind is read here.
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader
    except RecursionError:  # a last guard: the loader stops at MAX_DEPTH first
        raise ValidationError(TOO_DEEP) from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or "cannot be read"
        raise ValidationError(f"Not valid YAML or JSON: {problem}{where}.") from None


def _check_version(data: dict) -> None:
    openapi, swagger = data.get("openapi"), data.get("swagger")
    is_v3 = isinstance(openapi, str) and openapi.startswith("3.")
    if not is_v3 and str(swagger) != "2.0":
        raise ValidationError(
            "Not an OpenAPI 3.x or Swagger 2.0 document: it needs "
            '"openapi": "3.x.y" or "swagger": "2.0" at the top.'
        )
    missing = [key for key in ("info", "paths") if not isinstance(data.get(key), dict)]
    if missing:
        raise ValidationError(
            f"The document has no {' and no '.join(repr(m) for m in missing)} section."
        )


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _validate(data: dict) -> None:
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    try:
        validate(data)
    except OpenAPIValidationError as exc:
        where = exc.json_path  # "$.paths['/a'].get"
        at = f" at {where}" if where != "$" else ""
        raise ValidationError(f"Invalid OpenAPI document{at}: {exc.message}") from None
    except Exception as exc:  # the validator raises other types on odd input
        raise ValidationError(f"Invalid OpenAPI document: {exc}") from None


def openapi_operations(spec: dict | None) -> list[Operation]:
    """Every operation of a stored document, in the document's path order."""
    if not isinstance(spec, dict) or not isinstance(spec.get("paths"), dict):
        return []
    operations = []
    for path, item in spec["paths"].items():
        if not isinstance(item, dict):
            continue
        for method in HTTP_METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            summary = op.get("summary") or op.get("description") or ""
            parameters = [
                *(item.get("parameters") or []),
                *(op.get("parameters") or []),
            ]
            operations.append(
                Operation(
                    method=method.upper(),
                    path=str(path),
                    summary=str(summary).strip().splitlines()[0] if summary else "",
                    operation_id=str(op.get("operationId") or ""),
                    deprecated=bool(op.get("deprecated")),
                    example_query=_example_query(parameters),
                )
            )
    return operations


def operation_ids(spec: dict | None) -> dict[str, tuple[str, str]] | None:
    """operationId → (METHOD, path template) of a stored document (the first
    operation of an id the document repeats); None without a document. Weighted
    operations typed as `operationId units` are resolved with it."""
    if not isinstance(spec, dict) or not isinstance(spec.get("paths"), dict):
        return None
    ids: dict[str, tuple[str, str]] = {}
    for op in openapi_operations(spec):
        if op.operation_id:
            ids.setdefault(op.operation_id, (op.method, op.path))
    return ids


def example_call(spec: dict | None) -> str | None:
    """The path (and query) of a call that works, for the store's `curl` example:
    the first GET operation without path parameters, else the first GET with its
    path parameters filled from their examples (or "<name>"); each with its
    required query parameters. None without a GET operation."""
    if not isinstance(spec, dict) or not isinstance(spec.get("paths"), dict):
        return None
    gets = []
    for path, item in spec["paths"].items():
        if isinstance(item, dict) and isinstance(item.get("get"), dict):
            parameters = [
                *(item.get("parameters") or []),
                *(item["get"].get("parameters") or []),
            ]
            gets.append((str(path), parameters))
    if not gets:
        return None
    path, parameters = next(
        ((p, params) for p, params in gets if "{" not in p), gets[0]
    )
    for param in parameters:
        if isinstance(param, dict) and param.get("in") == "path":
            name = param.get("name")
            if isinstance(name, str):
                value = _example(param) or f"<{name}>"
                path = path.replace("{" + name + "}", quote(value, safe="<>"))
    query = _example_query(parameters)
    return path + (f"?{query}" if query else "")


def _example(param: dict) -> str | None:
    schema = param.get("schema") if isinstance(param.get("schema"), dict) else {}
    example = param.get("example", schema.get("example"))
    if example is None and isinstance(schema.get("enum"), list) and schema["enum"]:
        example = schema["enum"][0]
    return None if example is None else str(example)


def _example_query(parameters: list) -> str:
    """`name=value&…` for the required query parameters (local `$ref`s skipped)."""
    pairs = []
    for param in parameters:
        if not isinstance(param, dict) or param.get("in") != "query":
            continue
        if not param.get("required") or not isinstance(param.get("name"), str):
            continue
        value = _example(param) or f"<{param['name']}>"
        pairs.append(f"{quote(param['name'])}={quote(value, safe='<>')}")
    return "&".join(pairs)


def openapi_title(spec: dict | None) -> str:
    if isinstance(spec, dict) and isinstance(spec.get("info"), dict):
        info = spec["info"]
        return f"{info.get('title', '')} {info.get('version', '')}".strip()
    return ""
