"""Shared test helpers: reading rendered pages (where an error is shown, not only
that the form has one; a small element tree built with the standard library's
html.parser), and running Python in a child process with a chosen environment."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_python(
    *args: str, env: dict[str, str], timeout: float = 60, **kwargs
) -> subprocess.CompletedProcess:
    """`python ARGS` in a child process started in the checkout, with exactly `env`
    (the caller's cleaned environment) and its output captured as text; `kwargs`
    go to subprocess.run (e.g. `input`)."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def totp_code(secret: str, *, at: float | None = None, period: int = 30) -> str:
    """The 6-digit code an authenticator app shows for a base32 `secret` (RFC 6238,
    HMAC-SHA1), computed here rather than by the library under test. For the current
    time it waits out the last two seconds of a period, so the code is still the
    current one when the server checks it."""
    if at is None:
        left = period - time.time() % period
        if left < 2:
            time.sleep(left + 0.05)
        at = time.time()
    counter = int(at // period)
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parent: Element | None = None
    children: list[Element | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def iter(self):
        """This element and every element inside it, in document order."""
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join(" ".join(parts).split())

    def errors(self) -> str:
        """The text of every `<ul class="errorlist">` inside this element."""
        return " ".join(
            e.text() for e in self.iter() if e.tag == "ul" and "errorlist" in e.classes
        )


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        element = Element(tag, {k: v or "" for k, v in attrs}, parent=self.current)
        self.current.children.append(element)
        if tag not in VOID:
            self.current = element

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(
            Element(tag, {k: v or "" for k, v in attrs}, parent=self.current)
        )

    def handle_endtag(self, tag):
        open_element = self.current
        while open_element is not self.root and open_element.tag != tag:
            open_element = open_element.parent
        if open_element is not self.root:  # a stray end tag is ignored
            self.current = open_element.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(html: str | bytes) -> Element:
    builder = _TreeBuilder()
    builder.feed(html.decode() if isinstance(html, bytes) else html)
    builder.close()
    return builder.root


def by_id(html: str | bytes, element_id: str) -> Element:
    for element in parse(html).iter():
        if element.attrs.get("id") == element_id:
            return element
    raise AssertionError(f'no element with id="{element_id}" on the page')


def field_error(html: str | bytes, name: str) -> str:
    """The errors shown in the block of field `name` (templates/partials/field.html:
    `<div class="field …" id="field-NAME">`), as text; "" when it shows none."""
    return by_id(html, f"field-{name}").errors()


def input_cell_error(html: str | bytes, input_name: str) -> str:
    """The errors shown in the table cell of the input named `input_name` (the band
    table of the tier form: `bands-0-up_to`)."""
    for element in parse(html).iter():
        if element.tag in {"input", "select", "textarea"} and (
            element.attrs.get("name") == input_name
        ):
            cell = element.parent
            while cell is not None and cell.tag != "td":
                cell = cell.parent
            assert cell is not None, f"{input_name} is not in a table cell"
            return cell.errors()
    raise AssertionError(f'no input named "{input_name}" on the page')


def submitted_values(html: str | bytes, form_id: str) -> dict[str, str]:
    """What a browser submits for the form `form_id` as the page shows it,
    unchanged: text inputs' values, checked boxes and radios, each select's selected
    option (else its first), textareas' text (without the one leading newline
    browsers drop). Hidden inputs included; buttons not."""
    (form,) = [e for e in parse(html).iter() if e.attrs.get("id") == form_id]
    values: dict[str, str] = {}
    for element in form.iter():
        name = element.attrs.get("name")
        if not name:
            continue
        if element.tag == "input":
            kind = element.attrs.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in element.attrs:
                    values[name] = element.attrs.get("value") or "on"
            elif kind not in ("submit", "button", "file"):
                values[name] = element.attrs.get("value", "")
        elif element.tag == "textarea":
            text = "".join(c for c in element.children if isinstance(c, str))
            values[name] = text.removeprefix("\r\n").removeprefix("\n")
        elif element.tag == "select":
            options = [e for e in element.iter() if e.tag == "option"]
            chosen = [o for o in options if "selected" in o.attrs] or options[:1]
            if chosen:
                values[name] = chosen[0].attrs.get("value", chosen[0].text())
    return values
