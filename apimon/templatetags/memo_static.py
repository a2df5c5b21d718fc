"""`{% load static %}` with a `{% static %}` that remembers its answers (see
`memo_urls`): the static storage's URL of a path is the same for a process's
life, and the manifest storage works it out again at each call. Django's other
tags of the library (`get_static_prefix`, `get_media_prefix`) as they are."""

from __future__ import annotations

from django.template import Library
from django.templatetags import static as django_static

register = Library()
register.tags.update(django_static.register.tags)
register.filters.update(django_static.register.filters)

MAX_ENTRIES = 2_000
_urls: dict[str, str] = {}


def forget() -> None:
    _urls.clear()


class MemoStaticNode(django_static.StaticNode):
    def url(self, context):
        path = self.path.resolve(context)
        if not isinstance(path, str):
            return self.handle_simple(path)
        url = _urls.get(path)
        if url is None:
            url = self.handle_simple(path)  # a missing entry raises: not remembered
            if len(_urls) >= MAX_ENTRIES:
                _urls.clear()
            _urls[path] = url
        return url


@register.tag("static")
def do_static(parser, token):
    """Django's `{% static %}` (the same syntax and answers), remembered."""
    node = django_static.do_static(parser, token)
    node.__class__ = MemoStaticNode
    return node
