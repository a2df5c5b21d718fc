"""A `{% url %}` that remembers its answers (every template's).

It answers the same string for the same arguments as long as the URLconf and the
script prefix stay what they are, which they do for a process's life: Django's
`reverse()` walks the URL patterns each time (~20–40 µs a call; the navbar and
the publisher's sub-navigation make 20 of them on every signed-in page, the
dashboard 49). So each answer is kept, keyed by everything it depends on; a test
that changes a setting it reads empties them (`setting_changed`).

Wired in settings.TEMPLATES as a builtin: this module's `url` replaces Django's
built-in tag. Only plain strings and integers are remembered as arguments:
anything else (a model instance, a lazy string) goes to Django's tag as before. A
failure (no such URL) is never remembered.
"""

from __future__ import annotations

from django.core.signals import setting_changed
from django.template import Library
from django.template.defaulttags import URLNode
from django.template.defaulttags import url as django_url
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse
from django.utils.html import conditional_escape
from django.utils.translation import get_language

register = Library()

# Enough for every page's links; emptied whole when full (each entry is short).
MAX_ENTRIES = 20_000
_urls: dict[tuple, str] = {}
_PLAIN = (str, int)
_SETTINGS = frozenset({"ROOT_URLCONF", "FORCE_SCRIPT_NAME"})


def forget(**kwargs) -> None:
    """Empty what the tag remembers (a setting it depends on changed)."""
    if kwargs.get("setting") in _SETTINGS or not kwargs:
        _urls.clear()


setting_changed.connect(forget, dispatch_uid="apimon.templatetags.memo_urls")


def _plain(value) -> bool:
    """A string (a template's literals are `SafeString`s) or an integer, not a bool
    (True would share 1's entry)."""
    return isinstance(value, _PLAIN) and not isinstance(value, bool)


class MemoURLNode(URLNode):
    """Django's `URLNode`, its `reverse()` answers remembered."""

    def render(self, context):
        args = tuple(arg.resolve(context) for arg in self.args)
        kwargs = {k: v.resolve(context) for k, v in self.kwargs.items()}
        view_name = self.view_name.resolve(context)
        if not (
            _plain(view_name)
            and all(map(_plain, args))
            and all(map(_plain, kwargs.values()))
        ):
            return super().render(context)
        try:
            current_app = context.request.current_app
        except AttributeError:
            try:
                current_app = context.request.resolver_match.namespace
            except AttributeError:
                current_app = None
        key = (
            view_name,
            args,
            tuple(sorted(kwargs.items())),
            current_app,
            get_urlconf(),
            get_script_prefix(),
            get_language(),
        )
        url = _urls.get(key)
        if url is None:
            try:
                url = reverse(
                    view_name, args=args, kwargs=kwargs, current_app=current_app
                )
            except NoReverseMatch:
                if self.asvar is None:
                    raise
                url = ""  # `as var`: a failure answers "", as Django's tag does
            else:
                if len(_urls) >= MAX_ENTRIES:
                    _urls.clear()
                _urls[key] = url
        if self.asvar:
            context[self.asvar] = url
            return ""
        return conditional_escape(url) if context.autoescape else url


@register.tag
def url(parser, token):
    """Django's `{% url %}` (the same syntax and answers), remembered."""
    node = django_url(parser, token)
    node.__class__ = MemoURLNode
    return node
