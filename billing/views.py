"""Monetization pages (owners only) and the two Stripe endpoints that are not
tenant-scoped: the OAuth callback and the webhook.

Below "Invoices": the subscriber's invoices in the store, and the publisher's revenue
(with its CSV export).
"""

from __future__ import annotations

import csv
import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apimon import stripe_client as sc
from apimon.models import Organization
from apimon.payment_errors import PaymentProviderError, StripeSignatureInvalid
from apimon.tenancy import MEMBERS, OWNER, PUBLISHERS, tenant_view
from apimon.web import provider_failed
from billing import selectors, services
from billing.catalog import CatalogError, versions_stripe_cannot_charge
from billing.forms import (
    BillingDetailsForm,
    DunningForm,
    PasswordConfirmForm,
    RevenueFilterForm,
)
from billing.models import PlatformSubscriptionStatus
from billing.reconcile import RepairError, catalog_reconcile, drift_repair
from billing.webhooks import webhook_event_receive
from pricing.currencies import from_minor

log = logging.getLogger(__name__)


ENABLED_MESSAGE = (
    "The configurations required for monetization have been added to your organization."
)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _status(request: HttpRequest) -> HttpResponse:
    return redirect("monetization:status", org_slug=request.tenant.organization.slug)


@tenant_view(OWNER)
def status(request: HttpRequest) -> HttpResponse:
    return _render_status(request)


def _render_status(
    request: HttpRequest, dunning_form: DunningForm | None = None
) -> HttpResponse:
    """The Monetization page; with a bound, invalid grace-period form: its errors."""
    organization = request.tenant.organization
    overview = selectors.monetization_overview(organization)
    return render(
        request,
        "billing/status.html",
        {
            "overview": overview,
            "payment_notice": selectors.platform_payment_notice_of(
                overview.subscription
            ),
            "nav": "monetization",
            "emulator_url": sc.emulator_dashboard_url(),
            "dunning_form": dunning_form or DunningForm(instance=organization),
        },
        status=400 if dunning_form is not None else 200,
    )


@tenant_view(OWNER)
@require_POST
def dunning(request: HttpRequest) -> HttpResponse:
    """The organization's grace period after a failed payment."""
    organization = Organization.objects.get(pk=request.tenant.organization.pk)
    form = DunningForm(request.POST, instance=organization)
    if not form.is_valid():
        return _render_status(request, dunning_form=form)
    form.save()
    messages.success(
        request,
        "Saved: a subscription whose payment fails is served for "
        f"{_count(organization.dunning_grace_days, 'more day')}, then blocked.",
    )
    return _status(request)


@tenant_view(OWNER)
def plans(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "billing/plans.html",
        {"plans": services.paid_plans(), "nav": "monetization"},
    )


@tenant_view(OWNER)
def upgrade(request: HttpRequest, plan_slug: str) -> HttpResponse:
    org = request.tenant.organization
    plan = get_object_or_404(services.paid_plans(), slug=plan_slug)
    # One read of the organization's platform plan (or None) for the whole page.
    sub = getattr(org, "platform_subscription", None)
    if (
        sub is not None
        and sub.status == PlatformSubscriptionStatus.ACTIVE
        and sub.plan_id != plan.pk
    ):
        # A change between paid plans keeps the card and follows the Billing
        # page's rule (upgrade now, prorated; downgrade at the month's end).
        return redirect(
            "platform-billing:change", org_slug=org.slug, plan_slug=plan_slug
        )
    form = BillingDetailsForm(
        request.POST or None,
        initial=BillingDetailsForm.initial_for(org, request.user),
    )
    if request.method == "POST" and form.is_valid():
        done = reverse("monetization:upgrade-done", args=[org.slug])
        back = reverse("monetization:upgrade", args=[org.slug, plan.slug])
        try:
            url = services.platform_checkout_start(
                organization=org,
                plan=plan,
                details=form.details(),
                success_url=request.build_absolute_uri(done)
                + "?session_id={CHECKOUT_SESSION_ID}",
                cancel_url=request.build_absolute_uri(back) + "?cancelled=1",
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        except PaymentProviderError as exc:
            log.warning("platform checkout for %s: %s", org, exc)
            form.add_error(None, provider_failed(exc))
        else:
            return redirect(url)
    return render(
        request,
        "billing/upgrade.html",
        {
            "plan": plan,
            "form": form,
            "cancelled": "cancelled" in request.GET,
            # The plan in force again: this is the way to a new card.
            "card_update": bool(
                sub
                and sub.status == PlatformSubscriptionStatus.ACTIVE
                and sub.plan_id == plan.pk
            ),
            "payment_notice": selectors.platform_payment_notice_of(sub),
            "nav": "monetization",
        },
    )


@tenant_view(OWNER)
def upgrade_done(request: HttpRequest) -> HttpResponse:
    org = request.tenant.organization
    try:
        subscription, _changed = services.platform_checkout_complete(
            session_id=request.GET.get("session_id", ""), organization=org
        )
    except services.CheckoutNotComplete as exc:
        messages.error(request, f"Your plan has not changed: {exc}")
        return redirect("monetization:plans", org_slug=org.slug)
    except PaymentProviderError as exc:
        messages.error(request, provider_failed(exc))
        return redirect("monetization:plans", org_slug=org.slug)
    if subscription.is_past_due:
        messages.success(
            request,
            f"Your new card •••• {subscription.card_last4} is saved. apimon is "
            "charging it for the failed payment now.",
        )
    elif services.connected_account(org) is not None:
        messages.success(
            request,
            f"You are on the {subscription.plan.name} plan; your card is "
            f"•••• {subscription.card_last4}.",
        )
    else:
        messages.success(
            request,
            f"You are on the {subscription.plan.name} plan. Next: connect your "
            "Stripe account.",
        )
    return _status(request)


@tenant_view(OWNER)
@require_POST
def connect(request: HttpRequest) -> HttpResponse:
    if not request.session.session_key:
        request.session.save()
    try:
        url = services.stripe_connect_start(
            organization=request.tenant.organization,
            user=request.user,
            session_key=request.session.session_key,
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return _status(request)
    return redirect(url)


@login_required
def connect_callback(request: HttpRequest) -> HttpResponse:
    """Stripe sends the owner back here (the one redirect URI registered with
    Stripe); the `state` says which organization it is for."""
    try:
        connection = services.stripe_connect_complete(
            state=request.GET.get("state", ""),
            code=request.GET.get("code", ""),
            error=request.GET.get("error", ""),
            user=request.user,
            session_key=request.session.session_key or "",
        )
    except services.ConnectFailed as failure:
        return render(
            request,
            "billing/connect_failed.html",
            {"failure": failure, "organization": failure.organization},
            status=200 if failure.reason == "denied" else 400,
        )
    except PaymentProviderError as exc:
        log.warning("connect callback: %s", exc)
        failure = services.ConnectFailed(
            "stripe_error",
            "Stripe could not be reached",
            provider_failed(exc),
        )
        return render(
            request, "billing/connect_failed.html", {"failure": failure}, status=502
        )
    org = connection.organization
    messages.success(
        request,
        f"Your Stripe account {connection.account_id} is connected to {org.name}.",
    )
    return redirect("monetization:status", org_slug=org.slug)


@tenant_view(OWNER)
def enable(request: HttpRequest) -> HttpResponse:
    org = request.tenant.organization
    connection = services.connected_account(org)
    if connection is None or not org.plan.allows_monetization:
        messages.info(request, "Upgrade and connect a Stripe account first.")
        return _status(request)
    form = PasswordConfirmForm(
        request.POST or None, user=request.user, organization=org
    )
    if request.method == "POST" and form.is_valid():
        try:
            result = services.monetization_enable(organization=org)
        except (ValidationError, CatalogError) as exc:
            form.add_error(None, str(exc))
        except PaymentProviderError as exc:
            log.warning("enable monetization for %s: %s", org, exc)
            form.add_error(None, provider_failed(exc))
        else:
            messages.success(request, ENABLED_MESSAGE)
            messages.info(
                request,
                f"Your Stripe account has {_count(result.products, 'product')} and "
                f"{_count(result.prices, 'price')} from apimon"
                + (f" ({len(result.created)} created now)." if result.created else "."),
            )
            if result.not_chargeable:
                messages.warning(request, result.not_chargeable_note)
            return _status(request)
    return render(
        request,
        "billing/enable.html",
        {"form": form, "connection": connection, "nav": "monetization"},
    )


@tenant_view(OWNER)
@require_POST
def disable(request: HttpRequest) -> HttpResponse:
    try:
        services.monetization_disable(
            organization=request.tenant.organization, actor=request.user
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            "Monetization is off: no new paid subscriptions. Existing paid "
            "subscriptions run to the end of their period and then end.",
        )
    return _status(request)


@tenant_view(OWNER)
def disconnect(request: HttpRequest) -> HttpResponse:
    org = request.tenant.organization
    connection = services.connected_account(org)
    if connection is None:
        messages.info(request, "No Stripe account is connected.")
        return _status(request)
    form = PasswordConfirmForm(
        request.POST or None, user=request.user, organization=org
    )
    if request.method == "POST" and form.is_valid():
        try:
            disconnected = services.stripe_disconnect(organization=org)
        except ValidationError as exc:
            form.add_error(None, exc)
        except PaymentProviderError as exc:
            form.add_error(None, provider_failed(exc))
        else:
            messages.success(
                request,
                f"{disconnected.account_id} is disconnected. Billing is paused and "
                "monetization is off.",
            )
            return _status(request)
    return render(
        request,
        "billing/disconnect.html",
        {"form": form, "connection": connection, "nav": "monetization"},
    )


@tenant_view(OWNER)
def catalog(request: HttpRequest) -> HttpResponse:
    org = request.tenant.organization
    connection = services.connected_account(org)
    return render(
        request,
        "billing/catalog.html",
        {
            "connection": connection,
            "not_chargeable": versions_stripe_cannot_charge(org),
            "objects": selectors.catalog_objects(org, connection),
            "drift": selectors.open_drift(org),
            "resolved": selectors.recent_resolved_drift(org)[:20],
            "nav": "monetization",
        },
    )


@tenant_view(OWNER)
@require_POST
def drift_check(request: HttpRequest) -> HttpResponse:
    org = request.tenant.organization
    try:
        result = catalog_reconcile(organization=org)
    except PaymentProviderError as exc:
        messages.error(request, provider_failed(exc))
    else:
        if result.open_drift:
            messages.warning(
                request,
                f"Checked {_count(result.checked, 'Stripe object')}: "
                f"{result.open_drift} "
                f"{'differs' if result.open_drift == 1 else 'differ'} from apimon.",
            )
        else:
            messages.success(
                request,
                f"Checked {_count(result.checked, 'Stripe object')}: all match apimon.",
            )
    return redirect("monetization:catalog", org_slug=org.slug)


@tenant_view(OWNER)
@require_POST
def drift_repair_view(request: HttpRequest, drift_id: int) -> HttpResponse:
    org = request.tenant.organization
    drift = selectors.get_drift_for_owner(org, drift_id)
    try:
        done = drift_repair(drift=drift, actor=request.user.email)
    except RepairError as exc:
        messages.error(request, str(exc))
    except PaymentProviderError as exc:
        messages.error(request, provider_failed(exc))
    else:
        messages.success(request, f"{done}.")
    return redirect("monetization:catalog", org_slug=org.slug)


@csrf_exempt
@require_POST
def webhook(request: HttpRequest) -> HttpResponse:
    """Stripe's events (platform and Connect). A bad signature or body is refused
    with 400 and nothing is stored; a duplicate delivery is acknowledged."""
    signature = request.headers.get("Stripe-Signature", "")
    try:
        _event, created = webhook_event_receive(
            payload=request.body, signature=signature
        )
    except StripeSignatureInvalid:
        return HttpResponseBadRequest("bad signature")
    except (ValueError, KeyError):
        return HttpResponseBadRequest("bad payload")
    return HttpResponse("ok" if created else "duplicate", content_type="text/plain")


# --- Invoices (the billing engine) --------------------------------------------


@tenant_view(MEMBERS)
def store_invoices(request: HttpRequest) -> HttpResponse:
    invoices = selectors.invoices_for_subscriber(request)
    return render(
        request,
        "billing/store_invoices.html",
        {"invoices": invoices, "nav": "invoices"},
    )


@tenant_view(MEMBERS)
def store_invoice(request: HttpRequest, invoice_id: int) -> HttpResponse:
    invoice = selectors.invoice_for_subscriber(request, invoice_id)
    return render(
        request, "billing/store_invoice.html", {"invoice": invoice, "nav": "invoices"}
    )


@tenant_view(PUBLISHERS)
def publisher_revenue(request: HttpRequest) -> HttpResponse:
    """Paid invoices per month, API and tier: gross, platform fee, net; a chart of
    the months and the CSV of the same range."""
    form = RevenueFilterForm(
        request.GET, latest=selectors.latest_payment(request.tenant.organization)
    )
    context: dict = {"form": form, "nav": "revenue"}
    if form.is_valid():
        start, end = form.range()
        context["revenue"] = selectors.revenue(
            request.tenant.organization, start=start, end=end
        )
        context["query"] = request.GET.urlencode() or (
            f"start={start:%Y-%m}&end={form.cleaned_data['end']:%Y-%m}"
        )
    return render(request, "billing/publisher_revenue.html", context)


@tenant_view(PUBLISHERS)
def publisher_revenue_csv(request: HttpRequest) -> HttpResponse:
    form = RevenueFilterForm(
        request.GET, latest=selectors.latest_payment(request.tenant.organization)
    )
    if not form.is_valid():
        return HttpResponse(
            "Bad filter: " + form.errors.as_text(),
            status=400,
            content_type="text/plain",
        )
    start, end = form.range()
    org = request.tenant.organization
    data = selectors.revenue(org, start=start, end=end)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"revenue-{org.slug}-{start:%Y-%m}-{form.cleaned_data['end']:%Y-%m}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(
        ["month", "api", "tier", "currency", "invoices", "gross", "platform_fee", "net"]
    )
    for row in data.rows:
        writer.writerow(
            [
                row.month,
                row.api,
                row.tier,
                row.currency.upper(),
                row.invoices,
                from_minor(row.gross_minor, row.currency),
                from_minor(row.fee_minor, row.currency),
                from_minor(row.net_minor, row.currency),
            ]
        )
    return response
