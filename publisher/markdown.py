"""Markdown documentation rendered to HTML that is safe to put in a page.

Publishers write API documentation in Markdown, and Markdown lets raw HTML through, so
the HTML that `markdown` produces is sanitized with nh3 (ammonia) against an allowlist:
only the tags and attributes below survive, every `on*` handler and `style` is dropped,
`<script>`/`<style>` lose their content too, links and images may only use http(s),
mailto or relative URLs, and every link gets `rel="noopener noreferrer"`.

The store renders the same documentation, so everything goes through
`render_markdown` (or the `markdown` template filter in `publisher_tags`).
"""

from __future__ import annotations

from functools import lru_cache

import markdown as _markdown
import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

EXTENSIONS = ["fenced_code", "tables", "sane_lists", "def_list", "abbr"]

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div",
    "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd",
    "li", "ol", "p", "pre", "s", "span", "strong", "sub", "summary", "sup", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip
# No `id`, `class` or `style` anywhere: ids could clobber the page's own elements and
# classes could borrow apimon's styling to fake its UI (a fake "alert").
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
}
URL_SCHEMES = {"http", "https", "mailto"}


class TooDeep(ValueError):
    """Markdown nested deeper than the renderer's recursion allows."""


def markdown_html(text: str) -> str:
    """Markdown → unsanitized HTML. Raises TooDeep for lists or quotes nested so
    deeply (`- - - - …`) that Python-Markdown's recursive parser gives up."""
    try:
        return _markdown.markdown(text, extensions=EXTENSIONS, output_format="html")
    except RecursionError:
        raise TooDeep("The documentation nests lists or quotes too deeply.") from None


def render_markdown(text: str | None) -> SafeString:
    """Markdown → sanitized HTML, marked safe for templates. Documentation the
    renderer cannot read (saved before the form refused it) shows as plain text."""
    if not text:
        return mark_safe("")
    return mark_safe(_sanitized_html(text))  # noqa: S308 - sanitized or escaped


# The same text always gives the same HTML: the store's API pages show one
# documentation to every visitor, rendered once per process (until it changes).
@lru_cache(maxsize=128)
def _sanitized_html(text: str) -> str:
    try:
        html = markdown_html(text)
    except TooDeep:
        return f"<pre>{escape(text)}</pre>"
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        clean_content_tags={"script", "style"},
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
