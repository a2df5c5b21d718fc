"""apimon's error pages: 400, 403, 404, 500 and a failed CSRF check.

Each uses apimon's layout (templates/base.html), says what happened in plain words and
links somewhere useful. Wired in apimon/urls.py (`handler400` …) and by
`CSRF_FAILURE_VIEW` in settings; Django calls them whatever DEBUG is for 403 and CSRF,
and for 400, 404 and 500 when DEBUG is off.

The 500 page is rendered without the request: no context processor runs (they read
the session, the user and the database, which may be what failed). If the layout
itself cannot be rendered (no static manifest with DEBUG=0, a broken template), every
one of them falls back to a plain page that still says what happened.
"""

from __future__ import annotations

import logging

from django.http import Http404, HttpRequest, HttpResponse
from django.template import loader
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

log = logging.getLogger(__name__)

PLAIN = (
    "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{title} · "
    "apimon</title></head><body><h1>{title}</h1><p>{text}</p>"
    '<p><a href="/">apimon home</a></p></body></html>'
)
PLAIN_TEXT = {
    400: ("Bad request", "apimon could not read this request. Nothing was changed."),
    403: ("Not allowed", "Your account may not open this page."),
    404: ("Page not found", "There is nothing at this address."),
    500: (
        "Something went wrong on our side",
        "apimon could not answer this request. Nothing you did caused it; try "
        "again in a moment.",
    ),
}


def _page(
    request: HttpRequest | None, template: str, context: dict, status: int
) -> HttpResponse:
    """The page in apimon's layout; if the layout itself cannot be rendered (no
    static manifest, a broken template), a plain page that still says it."""
    try:
        html = loader.get_template(template).render(context, request)
    except Exception:
        log.exception("the %s page could not be rendered", status)
        title, text = PLAIN_TEXT[status]
        html = PLAIN.format(title=title, text=text)
    return HttpResponse(html, status=status)


def _tenant_of(request: HttpRequest):
    """The organization named in the URL and the caller's membership, for the
    navbar and the links of a 403; None outside a tenant or for an unknown one."""
    from apimon.tenancy import resolve_tenant

    match = getattr(request, "resolver_match", None)
    slug = match.kwargs.get("org_slug") if match else None
    if not slug:
        return None
    try:
        return resolve_tenant(request, slug)
    except Http404:
        return None


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _page(request, "errors/400.html", {}, 400)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    tenant = getattr(request, "tenant", None) or _tenant_of(request)
    if tenant is not None and tenant.is_member:
        request.tenant = tenant  # the navbar shows where the caller is
    else:
        tenant = None
    return _page(request, "errors/403.html", {"member_of": tenant}, 403)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    # Nothing about the organization: a page of another tenant does not exist for
    # the caller, and the answer must not tell that it does.
    return _page(request, "errors/404.html", {}, 404)


def server_error(request: HttpRequest) -> HttpResponse:
    return _page(None, "errors/500.html", {}, 500)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    # Back to the page that held the form (a POST-only URL would answer 405).
    referer = request.headers.get("Referer", "")
    same_site = url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return _page(
        request,
        "errors/csrf.html",
        {"back": referer if same_site else reverse("home")},
        403,
    )
