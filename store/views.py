"""The store (developer portal): /t/<org>/store/… — the catalog for everyone, and a
subscriber's applications, keys and subscriptions for members."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apimon.tenancy import MEMBERS, tenant_view
from billing import selectors as billing_selectors
from publisher import selectors as catalog
from publisher.openapi import openapi_operations, openapi_title
from store import previews, selectors, services
from store.forms import (
    ApplicationForm,
    CancelForm,
    CatalogSearchForm,
    ChangeTierForm,
    KeyForm,
    RotateForm,
    SubscribeForm,
)
from store.models import SubscriptionState


def _posted(request: HttpRequest):
    return request.POST if request.method == "POST" else None


def _form_errors(form, exc: ValidationError) -> None:
    """Put a service's ValidationError next to the form's fields."""
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def _site_url(request: HttpRequest) -> str:
    """Where Stripe sends the browser back: the address the subscriber uses."""
    return request.build_absolute_uri("/").rstrip("/")


def _safe_next(request: HttpRequest) -> str | None:
    """A `next` that is a path on this site. (A bare word would be taken by
    redirect() for a URL name.)"""
    target = request.POST.get("next") or request.GET.get("next")
    if (
        target
        and target.startswith("/")
        and url_has_allowed_host_and_scheme(
            target,
            allowed_hosts={request.get_host()},
            require_https=request.is_secure(),
        )
    ):
        return target
    return None


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


# -- catalog (public) -----------------------------------------------------------------


@tenant_view(public=True)
def home(request: HttpRequest) -> HttpResponse:
    org = request.tenant.organization
    search = CatalogSearchForm(request.GET)
    terms = search.terms()
    entries = []
    if terms is not None:
        entries = selectors.store_catalog(
            org, request.user, q=terms["q"], tag=terms["tag"]
        )
    context = {
        "entries": entries,
        "tags": selectors.store_tags(org, request.user),
        "q": (terms or {}).get("q", ""),
        "tag": (terms or {}).get("tag", ""),
        "search_errors": search.error_text(),
        "nav": "apis",
    }
    return render(request, "store/home.html", context)


@tenant_view(public=True)
def api_detail(request: HttpRequest, api_id: int) -> HttpResponse:
    """An API's page (the gateway's 429 answers link here as the upgrade page)."""
    org = request.tenant.organization
    api = catalog.store_get_api(org, request.user, api_id)
    return _api_page(request, api)


def _api_page(request: HttpRequest, api, form: SubscribeForm | None = None):
    org = request.tenant.organization
    offers = selectors.tier_offers(api)
    applications = None
    if request.tenant.is_member:
        applications = selectors.applications_for(organization=org, user=request.user)
        if form is None:
            form = SubscribeForm(applications=applications, offers=offers)
            wanted = request.GET.get("tier")
            if wanted and wanted.isascii() and wanted.isdigit():
                form.fields["tier"].initial = int(wanted)
    gateway_url = f"{settings.SITE_URL}/gateway/{org.slug}/{api.context}/{api.version}/"
    context = {
        "api": api,
        "offers": offers,
        "label": selectors.price_label([o.tier for o in offers]),
        "operations": openapi_operations(api.openapi_spec),
        "openapi_title": openapi_title(api.openapi_spec),
        "tags": api.tags.all(),
        "gateway_url": gateway_url,
        "form": form,
        "applications": applications,
        "my_subscriptions": selectors.subscriptions_to_api(api, request.user),
        "accepts": catalog.api_accepts_subscriptions(api),
        "nav": "apis",
    }
    return render(request, "store/api_detail.html", context)


@tenant_view(MEMBERS)
@require_POST
def subscribe(request: HttpRequest, api_id: int) -> HttpResponse:
    org = request.tenant.organization
    api = catalog.store_get_api(org, request.user, api_id)
    applications = selectors.applications_for(organization=org, user=request.user)
    form = SubscribeForm(
        request.POST, applications=applications, offers=selectors.tier_offers(api)
    )
    if form.is_valid():
        try:
            result = services.subscription_create(
                application=form.cleaned_data["application"],
                api=api,
                tier=form.cleaned_data["tier"],
                actor=request.user,
                site_url=_site_url(request),
            )
        except ValidationError as exc:
            _form_errors(form, exc)
        except services.PaymentError as exc:
            form.add_error(None, str(exc))
        else:
            if result.checkout_url:
                return redirect(result.checkout_url)
            messages.success(
                request,
                f"{result.subscription.application.name} is subscribed to {api} "
                f"on {result.subscription.tier.name}.",
            )
            return redirect(
                "store:subscription-detail",
                org_slug=org.slug,
                subscription_id=result.subscription.pk,
            )
    return _api_page(request, api, form)


# -- applications -------------------------------------------------------------------


@tenant_view(MEMBERS)
def application_list(request: HttpRequest) -> HttpResponse:
    apps = selectors.applications_for(
        organization=request.tenant.organization, user=request.user
    )
    return render(
        request, "store/application_list.html", {"applications": apps, "nav": "apps"}
    )


@tenant_view(MEMBERS)
def application_create(request: HttpRequest) -> HttpResponse:
    org = request.tenant.organization
    form = ApplicationForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            app = services.application_create(
                organization=org, owner=request.user, **form.cleaned_data
            )
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"The application {app.name} is created.")
            target = _safe_next(request)
            if target:
                return redirect(target)
            return redirect(
                "store:application-detail", org_slug=org.slug, application_id=app.pk
            )
    context = {
        "form": form,
        "application": None,
        "next": _safe_next(request) or "",
        "nav": "apps",
    }
    return render(request, "store/application_form.html", context)


@tenant_view(MEMBERS)
def application_detail(request: HttpRequest, application_id: int) -> HttpResponse:
    org = request.tenant.organization
    app = selectors.get_application(
        organization=org, user=request.user, application_id=application_id
    )
    context = {
        "application": app,
        "keys": selectors.application_keys(app),
        "subscriptions": app.subscriptions.select_related("api", "tier").order_by(
            "-created_at"
        ),
        "key_form": KeyForm(),
        "now": timezone.now(),
        "nav": "apps",
    }
    return render(request, "store/application_detail.html", context)


@tenant_view(MEMBERS)
def application_edit(request: HttpRequest, application_id: int) -> HttpResponse:
    org = request.tenant.organization
    app = selectors.get_application(
        organization=org, user=request.user, application_id=application_id
    )
    form = ApplicationForm(
        _posted(request), initial={"name": app.name, "description": app.description}
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.application_update(application=app, **form.cleaned_data)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"The application {app.name} is saved.")
            return redirect(
                "store:application-detail", org_slug=org.slug, application_id=app.pk
            )
    return render(
        request,
        "store/application_form.html",
        {"form": form, "application": app, "nav": "apps"},
    )


@tenant_view(MEMBERS)
def application_delete(request: HttpRequest, application_id: int) -> HttpResponse:
    org = request.tenant.organization
    app = selectors.get_application(
        organization=org, user=request.user, application_id=application_id
    )
    live = app.subscriptions.exclude(state=SubscriptionState.CANCELLED).select_related(
        "api"
    )
    if request.method == "POST":
        try:
            services.application_delete(application=app, actor=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect(
                "store:application-detail", org_slug=org.slug, application_id=app.pk
            )
        messages.success(
            request, f"The application {app.name} is deleted; its keys are revoked."
        )
        return redirect("store:application-list", org_slug=org.slug)
    return render(
        request,
        "store/application_delete.html",
        {"application": app, "live": list(live), "nav": "apps"},
    )


# -- keys -----------------------------------------------------------------------------


def _key_page(request, issued: services.IssuedKey, *, rotated=None) -> HttpResponse:
    """The one time a key is shown: rendered in the POST's answer, never stored."""
    response = render(
        request,
        "store/key_issued.html",
        {
            "issued": issued,
            "application": issued.key.application,
            "rotated": rotated,
            "nav": "apps",
        },
    )
    return _no_store(response)


@tenant_view(MEMBERS)
@require_POST
def key_create(request: HttpRequest, application_id: int) -> HttpResponse:
    org = request.tenant.organization
    app = selectors.get_application(
        organization=org, user=request.user, application_id=application_id
    )
    form = KeyForm(request.POST)
    if form.is_valid():
        try:
            issued = services.api_key_create(
                application=app, actor=request.user, name=form.cleaned_data["name"]
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            return _key_page(request, issued)
    else:
        messages.error(request, "The key name is too long.")
    return redirect(
        "store:application-detail", org_slug=org.slug, application_id=app.pk
    )


@tenant_view(MEMBERS)
def key_rotate(request: HttpRequest, key_id: int) -> HttpResponse:
    org = request.tenant.organization
    key = selectors.get_key(organization=org, user=request.user, key_id=key_id)
    form = RotateForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.api_key_rotate(
                key=key, actor=request.user, grace=form.grace_period()
            )
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            key.refresh_from_db()
            return _key_page(request, issued, rotated=key)
    return render(
        request,
        "store/key_rotate.html",
        {"key": key, "form": form, "application": key.application, "nav": "apps"},
    )


@tenant_view(MEMBERS)
@require_POST
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    org = request.tenant.organization
    key = selectors.get_key(organization=org, user=request.user, key_id=key_id)
    services.api_key_revoke(key=key, actor=request.user)
    messages.success(
        request, f"The key {key.prefix}… is revoked: it stops working now."
    )
    return redirect(
        "store:application-detail", org_slug=org.slug, application_id=key.application_id
    )


# -- subscriptions ------------------------------------------------------------------


@tenant_view(MEMBERS)
def subscription_list(request: HttpRequest) -> HttpResponse:
    subs = selectors.subscriptions_for(
        organization=request.tenant.organization, user=request.user
    )
    return render(
        request,
        "store/subscription_list.html",
        {"subscriptions": subs, "nav": "subscriptions"},
    )


def _subscription(request: HttpRequest, subscription_id: int):
    return selectors.get_subscription(
        organization=request.tenant.organization,
        user=request.user,
        subscription_id=subscription_id,
    )


@tenant_view(MEMBERS)
def subscription_detail(request: HttpRequest, subscription_id: int) -> HttpResponse:
    sub = _subscription(request, subscription_id)
    if request.GET.get("checkout") == "cancelled":
        if sub.state == SubscriptionState.CANCELLED:
            messages.info(
                request,
                "This subscription is cancelled: its checkout is closed and no card "
                "was saved.",
            )
        else:
            messages.info(request, "Checkout was cancelled: no card was saved.")
    now = timezone.now()
    # The billing engine's own dry run: the page shows what it will invoice. When it
    # rates this period's usage it has counted it already (flushed and in Redis).
    invoice = billing_selectors.next_invoice_preview(sub, now)
    usage = invoice.usage if invoice and invoice.usage is not None else None
    context = {
        "subscription": sub,
        "usage": previews.usage_so_far(sub, now) if usage is None else usage,
        "invoice": invoice,
        "events": selectors.subscription_events(sub),
        "keys": selectors.application_keys(sub.application),
        "invoices_template": selectors.invoices_template(),
        "monetization": _monetization(sub),
        "now": now,
        "nav": "subscriptions",
    }
    return render(request, "store/subscription_detail.html", context)


def _monetization(subscription) -> bool:
    from billing.models import monetization_enabled

    return monetization_enabled(subscription.organization)


@tenant_view(MEMBERS)
def subscription_change(request: HttpRequest, subscription_id: int) -> HttpResponse:
    """GET: choose a tier and see the preview (?tier=…). POST: confirm."""
    sub = _subscription(request, subscription_id)
    offers = selectors.tier_offers(sub.api)
    data = _posted(request) or (request.GET if "tier" in request.GET else None)
    form = ChangeTierForm(data, offers=offers, current_tier_id=sub.tier_id)
    preview = None
    if data is not None and form.is_valid():
        tier = form.cleaned_data["tier"]
        if request.method == "POST":
            try:
                result = services.subscription_change_tier(
                    subscription=sub,
                    tier=tier,
                    actor=request.user,
                    site_url=_site_url(request),
                )
            except ValidationError as exc:
                _form_errors(form, exc)
            except services.PaymentError as exc:
                form.add_error(None, str(exc))
            else:
                return _after_change(request, result, tier)
        if form.is_valid():
            preview = previews.tier_change_preview(
                subscription=sub, tier=tier, now=timezone.now()
            )
    context = {
        "subscription": sub,
        "form": form,
        "offers": [o for o in offers if o.tier.pk != sub.tier_id],
        "preview": preview,
        "nav": "subscriptions",
    }
    if request.headers.get("HX-Request") and request.method == "GET":
        return render(request, "store/_change_preview.html", context)
    return render(request, "store/subscription_change.html", context)


def _after_change(request, result: services.ChangeResult, tier) -> HttpResponse:
    sub = result.subscription
    if result.checkout_url:
        return redirect(result.checkout_url)
    if result.kind == "upgrade":
        messages.success(request, f"Your subscription is now on {tier.name}.")
    else:
        end = sub.current_period_end
        messages.success(
            request, f"Your subscription changes to {tier.name} on {end:%d %b %Y}."
        )
    return redirect(
        "store:subscription-detail",
        org_slug=request.tenant.organization.slug,
        subscription_id=sub.pk,
    )


@tenant_view(MEMBERS)
@require_POST
def subscription_unschedule(request: HttpRequest, subscription_id: int) -> HttpResponse:
    sub = _subscription(request, subscription_id)
    try:
        services.subscription_unschedule_change(subscription=sub, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"You stay on {sub.tier.name}.")
    return _to_detail(request, sub)


def _to_detail(request, sub) -> HttpResponse:
    return redirect(
        "store:subscription-detail",
        org_slug=request.tenant.organization.slug,
        subscription_id=sub.pk,
    )


@tenant_view(MEMBERS)
def subscription_cancel(request: HttpRequest, subscription_id: int) -> HttpResponse:
    sub = _subscription(request, subscription_id)
    form = CancelForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            sub = services.subscription_cancel(
                subscription=sub,
                actor=request.user,
                at_period_end=form.cleaned_data["when"] == "period_end",
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            if sub.state == SubscriptionState.CANCELLED:
                messages.success(request, "The subscription is cancelled.")
            else:
                messages.success(
                    request,
                    f"The subscription ends on {sub.ends_at:%d %b %Y}.",
                )
        return _to_detail(request, sub)
    return render(
        request,
        "store/subscription_cancel.html",
        {"subscription": sub, "form": form, "nav": "subscriptions"},
    )


@tenant_view(MEMBERS)
@require_POST
def subscription_resume(request: HttpRequest, subscription_id: int) -> HttpResponse:
    sub = _subscription(request, subscription_id)
    try:
        services.subscription_resume(subscription=sub, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "The subscription continues.")
    return _to_detail(request, sub)


@tenant_view(MEMBERS)
@require_POST
def subscription_checkout(request: HttpRequest, subscription_id: int) -> HttpResponse:
    """Complete payment (PENDING_PAYMENT) or update the card (e.g. ON_HOLD)."""
    sub = _subscription(request, subscription_id)
    try:
        url = services.subscription_checkout(
            subscription=sub, actor=request.user, site_url=_site_url(request)
        )
    except (ValidationError, services.PaymentError) as exc:
        text = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        messages.error(request, text)
        return _to_detail(request, sub)
    return redirect(url)


@tenant_view(MEMBERS)
def checkout_return(request: HttpRequest, subscription_id: int) -> HttpResponse:
    """Stripe Checkout's success_url. The webhook may have confirmed already."""
    sub = _subscription(request, subscription_id)
    try:
        outcome = services.subscription_confirm_checkout(
            subscription=sub, session_id=request.GET.get("session_id", "")
        )
    except services.PaymentError as exc:
        messages.error(request, f"{exc} Your card is saved; reload this page.")
        return _to_detail(request, sub)
    sub.refresh_from_db()
    if outcome in (services.CheckoutOutcome.DONE, services.CheckoutOutcome.ALREADY):
        if sub.state == SubscriptionState.TRIALING:
            messages.success(
                request,
                f"Your card is saved. Your trial runs until {sub.trial_end:%d %b %Y}.",
            )
        else:
            messages.success(
                request,
                f"Your card is saved. The subscription is "
                f"{sub.get_state_display().lower()}.",
            )
    elif outcome == services.CheckoutOutcome.INCOMPLETE:
        messages.warning(request, "The card is not saved yet.")
    elif outcome == services.CheckoutOutcome.CANCELLED:
        messages.error(
            request,
            "This subscription was cancelled before the checkout was completed: "
            "the checkout changed nothing.",
        )
    elif outcome == services.CheckoutOutcome.EXPIRED:
        messages.warning(
            request, "This checkout expired before a card was saved: start it again."
        )
    else:
        messages.error(request, "This checkout does not belong to this subscription.")
    return _to_detail(request, sub)
