"""The store (developer portal): /t/<org>/store/… — the catalog for everyone, and a
subscriber's applications, keys and subscriptions for members."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apimon import clock
from apimon import services as tenancy_services
from apimon.payment_errors import PaymentProviderError
from apimon.tenancy import MEMBERS, tenant_view
from apimon.web import add_service_errors, posted, provider_down
from pricing.dates import strftime
from publisher import selectors as catalog
from store import hooks, page_cache, previews, selectors, services
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
from store.tier_change import UPGRADE

DAY = "%d %b %Y"  # how the store's messages name a day: "05 Mar 2027"


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
    sees = _sees_restricted(request)
    search = CatalogSearchForm(request.GET)
    terms = search.terms()
    entries = []
    if terms is not None:
        entries = selectors.store_catalog(
            org, request.user, q=terms["q"], tag=terms["tag"], sees_restricted=sees
        )
    context = {
        "entries": entries,
        # Offer to ask for the restricted APIs to those who do not see them.
        "access_card": not sees and selectors.restricted_apis_exist(org),
        "tags": selectors.store_tags(org, request.user, sees_restricted=sees),
        "q": (terms or {}).get("q", ""),
        "tag": (terms or {}).get("tag", ""),
        "search_errors": search.error_text(),
        "audience": page_cache.audience(sees),
        "nav": "apis",
    }
    return render(request, "store/home.html", context)


@tenant_view(public=True)
def api_detail(request: HttpRequest, api_id: int) -> HttpResponse:
    """An API's page (the gateway's 429 answers link here as the upgrade page)."""
    org = request.tenant.organization
    api = selectors.store_get_api(
        org, request.user, api_id, sees_restricted=_sees_restricted(request)
    )
    return _api_page(request, api)


def _sees_restricted(request: HttpRequest) -> bool:
    """`catalog.sees_restricted_apis` for the caller, from the membership the
    tenant's resolution loaded."""
    membership = request.tenant.membership
    return membership is not None and membership.sees_restricted_apis


def _api_page(
    request: HttpRequest, api, form: SubscribeForm | None = None, *, pending=None
):
    org = request.tenant.organization
    showcase = selectors.api_showcase(api)
    # A form posted back is checked against the tiers as they are now.
    offers = selectors.tier_offers(
        api,
        tiers=showcase.tiers if form is None else None,
        meters_by_key=showcase.meters,
    )
    applications = None
    if request.tenant.is_member:
        applications = selectors.applications_to_subscribe(
            organization=org, user=request.user
        )
        if form is None:
            form = SubscribeForm(applications=applications, offers=offers)
            wanted = request.GET.get("tier")
            if wanted and wanted.isascii() and wanted.isdigit():
                form.fields["tier"].initial = int(wanted)
    gateway_url = (
        f"{settings.GATEWAY_URL}/gateway/{org.slug}/{api.context}/{api.version}/"
    )
    context = {
        "api": api,
        "offers": offers,
        "label": selectors.price_label([o.tier for o in offers]),
        "operations": showcase.operations,
        "openapi_title": showcase.openapi_title,
        "tags": showcase.tags,
        "gateway_url": gateway_url,
        "example_call": showcase.example_call,
        "form": form,
        "applications": applications,
        "my_subscriptions": selectors.subscriptions_to_api(api, request.user),
        "accepts": catalog.api_accepts_subscriptions(api),
        # A RESTRICTED API seen through a live subscription after access was taken
        # back: manage what exists, subscribe nothing new.
        "closed_to_you": not catalog.api_open_to(
            api, request.user, sees_restricted=_sees_restricted(request)
        ),
        # Subscribing again after an abandoned Checkout: offer to complete it.
        "pending": pending,
        # The parts every visitor sees alike come from the page cache: per
        # audience, and per which tiers can be chosen (whether the organization
        # takes payments is no part of the catalog).
        "audience": page_cache.audience(_sees_restricted(request)),
        "offers_available": "".join("1" if o.available else "0" for o in offers),
        "nav": "apis",
    }
    return render(request, "store/api_detail.html", context)


@tenant_view(MEMBERS)
@require_POST
def subscribe(request: HttpRequest, api_id: int) -> HttpResponse:
    org = request.tenant.organization
    api = selectors.store_get_api(org, request.user, api_id)
    applications = selectors.applications_to_subscribe(
        organization=org, user=request.user
    )
    form = SubscribeForm(
        request.POST, applications=applications, offers=selectors.tier_offers(api)
    )
    pending = None
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
            if _is_pending_payment(exc):
                pending = _pending_subscription(
                    api, request.user, form.cleaned_data["application"]
                )
            add_service_errors(form, exc)
        except PaymentProviderError as exc:
            form.add_error(None, provider_down(exc))
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
    return _api_page(request, api, form, pending=pending)


def _is_pending_payment(exc: ValidationError) -> bool:
    errors = exc.error_dict.get("application", []) if hasattr(exc, "error_dict") else []
    return any(error.code == "pending_payment" for error in errors)


def _pending_subscription(api, user, application):
    """The application's subscription to `api` that waits for its first payment."""
    return next(
        (
            s
            for s in selectors.subscriptions_to_api(api, user)
            if s.application_id == application.pk
            and s.state == SubscriptionState.PENDING_PAYMENT
        ),
        None,
    )


@tenant_view(MEMBERS)
@require_POST
def access_request(request: HttpRequest) -> HttpResponse:
    """Ask the owners and publishers for the organization's restricted APIs."""
    org = request.tenant.organization
    try:
        membership = tenancy_services.membership_request_access(
            membership=request.tenant.membership
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        if membership.sees_restricted_apis:
            messages.info(request, "You see every API of this store already.")
        else:
            messages.success(
                request,
                f"Your request is sent to {org.name}. You will get an email when "
                "it is approved.",
            )
    return redirect("store:home", org_slug=org.slug)


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
    form = ApplicationForm(posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            app = services.application_create(
                organization=org, owner=request.user, **form.cleaned_data
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
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
        "now": clock.now(),
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
        posted(request), initial={"name": app.name, "description": app.description}
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.application_update(application=app, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
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
    form = RotateForm(posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.api_key_rotate(
                key=key, actor=request.user, grace=form.grace_period()
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
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
    now = clock.now()
    # The billing engine's own dry run: the page shows what it will invoice. When it
    # rates this period's usage it has counted it already (flushed and in Redis).
    invoice = hooks.next_invoice_preview(sub, now)
    usage = invoice.usage if invoice and invoice.usage is not None else None
    meter_rows = selectors.version_meter_rows(sub.organization, sub.tier_version)
    meter_used = hooks.meter_usage_so_far(sub, now, [r.key for r in meter_rows])
    context = {
        "subscription": sub,
        "usage": hooks.usage_so_far(sub, now) if usage is None else usage,
        "invoice": invoice,
        "events": selectors.subscription_events(sub, actors=False),
        "keys": selectors.application_keys(sub.application),
        # Each meter the tier version prices (price and quota in words), and its
        # units this period.
        "meters": [(row, meter_used.get(row.key, 0)) for row in meter_rows],
        "invoices_template": selectors.invoices_template(),
        # Asked only where the page shows it (a subscription waiting for payment).
        "monetization": lambda: hooks.takes_payments(sub.organization),
        "now": now,
        "nav": "subscriptions",
    }
    return render(request, "store/subscription_detail.html", context)


@tenant_view(MEMBERS)
def subscription_change(request: HttpRequest, subscription_id: int) -> HttpResponse:
    """GET: choose a tier and see the preview (?tier=…). POST: confirm."""
    sub = _subscription(request, subscription_id)
    offers = selectors.tier_offers(sub.api)
    data = posted(request) or (request.GET if "tier" in request.GET else None)
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
                add_service_errors(form, exc)
            except PaymentProviderError as exc:
                form.add_error(None, provider_down(exc))
            else:
                return _after_change(request, result, tier)
        if form.is_valid():
            preview = previews.tier_change_preview(
                subscription=sub, tier=tier, now=clock.now()
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
    if result.kind == UPGRADE:
        messages.success(request, f"Your subscription is now on {tier.name}.")
    else:
        end = sub.current_period_end
        messages.success(
            request,
            f"Your subscription changes to {tier.name} on {strftime(end, DAY)}.",
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
    form = CancelForm(posted(request))
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
                    f"The subscription ends on {strftime(sub.ends_at, DAY)}.",
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
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return _to_detail(request, sub)
    except PaymentProviderError as exc:
        messages.error(request, provider_down(exc))
        return _to_detail(request, sub)
    return redirect(url)


def _pay_failed_invoices_now(request: HttpRequest, sub) -> None:
    """A new card for a subscription held back by a failed payment: pay its failed
    invoices in this request, so the page shows the outcome (active again, or
    declined again) instead of "on hold" until a reload. The task the card update
    enqueued does the same for the webhook's path; run after this, it finds them
    paid. A Stripe outage leaves it to that task."""
    try:
        hooks.pay_failed_invoices(sub)
    except PaymentProviderError:
        messages.info(request, "The payment with your new card is being retried.")
    sub.refresh_from_db()


@tenant_view(MEMBERS)
def checkout_return(request: HttpRequest, subscription_id: int) -> HttpResponse:
    """Stripe Checkout's success_url. The webhook may have confirmed already."""
    sub = _subscription(request, subscription_id)
    try:
        outcome = services.subscription_confirm_checkout(
            subscription=sub, session_id=request.GET.get("session_id", "")
        )
    except PaymentProviderError as exc:
        messages.error(
            request, f"{provider_down(exc)} Your card is saved; reload this page."
        )
        return _to_detail(request, sub)
    sub.refresh_from_db()
    if outcome in (services.CheckoutOutcome.DONE, services.CheckoutOutcome.ALREADY):
        if sub.state in (SubscriptionState.ON_HOLD, SubscriptionState.BLOCKED):
            _pay_failed_invoices_now(request, sub)
        if sub.state == SubscriptionState.TRIALING:
            messages.success(
                request,
                "Your card is saved. Your trial runs until "
                f"{strftime(sub.trial_end, DAY)}.",
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
