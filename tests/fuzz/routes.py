"""What the fuzz tests send where, enumerated from the code rather than listed by
hand, so that a view or form added later is fuzzed too:

- every route of the URLconf (`walk`), with its path parameters;
- for each route, the names a request may carry (`code_fields`): the fields of every
  form class the view's code refers to (directly, through a module attribute, or in
  a helper function of the same module), the identifier-like string constants of
  that code (what it reads with `request.POST.get("action")`), and the options of
  choice fields;
- at run time, the inputs, selects and textareas of the page the route renders
  (`html_fields`), which adds the fields of sub-forms (a meter's price row,
  `meter-requests-pricing_model`) and model choices.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from types import CodeType, FunctionType, ModuleType

from django import forms
from django.urls import URLPattern, URLResolver, get_resolver

IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,30}")
# Converters and named groups in a route: <int:api_id>, <slug:org_slug>, (?P<key>…).
PARAMETER = re.compile(
    r"<(?:(?P<conv>\w+):)?(?P<name>\w+)>|\(\?P<(?P<rname>\w+)>[^)]*\)"
)


@dataclass(frozen=True)
class Route:
    pattern: str  # "t/<slug:org_slug>/publisher/apis/<int:api_id>/"
    name: str
    callback: object

    @property
    def parameters(self) -> list[str]:
        return [m["name"] or m["rname"] for m in PARAMETER.finditer(self.pattern)]

    @property
    def is_admin(self) -> bool:
        return self.pattern.startswith("admin/")

    def url(self, values: dict[str, str]) -> str:
        """The path with `values` in place of the parameters."""

        def fill(match: re.Match) -> str:
            return str(values[match["name"] or match["rname"]])

        path = PARAMETER.sub(fill, self.pattern).replace("^", "").replace("$", "")
        return "/" + path

    def __str__(self) -> str:
        """The pattern with its parameters as {name}: a readable test id."""
        text = PARAMETER.sub(
            lambda m: "{" + (m["name"] or m["rname"]) + "}", self.pattern
        )
        return "/" + text.replace("^", "").replace("$", "")


def _walk(patterns, prefix: str = "") -> Iterator[tuple[str, object, str]]:
    for p in patterns:
        route = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, route)
        elif isinstance(p, URLPattern):
            yield route, p.callback, p.name or ""


def walk() -> list[Route]:
    """Every route of the URLconf."""
    return [
        Route(pattern, name, cb)
        for pattern, cb, name in _walk(get_resolver().url_patterns)
    ]


# -- the names a view reads ----------------------------------------------------------


def _function(callback) -> FunctionType | None:
    func = callback
    while hasattr(func, "__wrapped__"):
        func = func.__wrapped__
    func = getattr(func, "__func__", func)  # a bound method (the admin's views)
    return func if isinstance(func, FunctionType) else None


def _codes(code: CodeType) -> Iterator[CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _codes(const)


def _is_form(obj) -> bool:
    return isinstance(obj, type) and issubclass(obj, forms.BaseForm | forms.BaseFormSet)


@dataclass
class Fields:
    """Field names a route may take, with valid options where the code knows them."""

    options: dict[str, list[str]] = field(default_factory=dict)
    files: set[str] = field(default_factory=set)

    def add(self, name: str, values=()) -> None:
        known = self.options.setdefault(name, [])
        for value in values:
            if str(value) not in known:
                known.append(str(value))

    def merge(self, other: Fields) -> Fields:
        merged = Fields({k: list(v) for k, v in self.options.items()}, set(self.files))
        for name, values in other.options.items():
            merged.add(name, values)
        merged.files |= other.files
        return merged


def _form_fields(form_class, into: Fields) -> None:
    if issubclass(form_class, forms.BaseFormSet):
        form_class = form_class.form
    for name, form_field in form_class.base_fields.items():
        values = []
        choices = getattr(form_field, "choices", None)
        if isinstance(choices, list | tuple):
            for value, label in choices:
                if isinstance(label, list | tuple):  # an option group
                    values += [v for v, _ in label]
                else:
                    values.append(value)
        if isinstance(form_field, forms.BooleanField):
            values += ["on", "1"]
        into.add(name, [v for v in values if v not in ("", None)])
        if isinstance(form_field, forms.FileField):
            into.files.add(name)


def _read(func: FunctionType, into: Fields, seen: set) -> None:
    if func in seen:
        return
    seen.add(func)
    names = func.__globals__
    for code in _codes(func.__code__):
        for name in code.co_names:
            obj = names.get(name)
            if _is_form(obj):
                _form_fields(obj, into)
            elif isinstance(obj, ModuleType):
                for attribute in code.co_names:
                    candidate = getattr(obj, attribute, None)
                    if _is_form(candidate):
                        _form_fields(candidate, into)
            elif isinstance(obj, FunctionType) and obj.__module__ == func.__module__:
                _read(obj, into, seen)  # a helper of the same module
        for const in code.co_consts:
            if isinstance(const, str) and IDENTIFIER.fullmatch(const):
                into.add(const)


def code_fields(callback) -> Fields:
    """The names (and known options) the route's view reads; see the module."""
    fields = Fields()
    view_class = getattr(callback, "view_class", None)
    if view_class is not None:  # a class-based view (allauth's)
        form_class = getattr(view_class, "form_class", None)
        if _is_form(form_class):
            _form_fields(form_class, fields)
        for attribute in ("get", "post", "dispatch", "form_valid"):
            method = getattr(view_class, attribute, None)
            if isinstance(method, FunctionType):
                _read(method, fields, set())
        return fields
    func = _function(callback)
    if func is not None:
        _read(func, fields, set())
    return fields


# -- the names a page submits ---------------------------------------------------------


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.fields = Fields()
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        name = attrs.get("name", "")
        if tag in ("input", "textarea", "select", "button") and name:
            value = attrs.get("value")
            self.fields.add(name, [value] if value else [])
            if tag == "input" and attrs.get("type") == "file":
                self.fields.files.add(name)
        if tag == "select":
            self._select = name or None
        elif tag == "option" and self._select and attrs.get("value"):
            self.fields.add(self._select, [attrs["value"]])

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def html_fields(html: str) -> Fields:
    """The fields of every form on a page, with the values the page offers."""
    parser = _Inputs()
    parser.feed(html)
    parser.close()
    parser.fields.options.pop("csrfmiddlewaretoken", None)
    return parser.fields
