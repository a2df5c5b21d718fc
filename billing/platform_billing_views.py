"""The owner's Billing page (billing/platform_billing.py has the rules): the plan,
its status and next charge, its invoices, the card, changing and cancelling."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apimon import clock
from apimon.payment_errors import PaymentProviderError
from apimon.tenancy import OWNER, tenant_view
from apimon.web import provider_failed
from billing import platform_billing as pb
from billing import selectors, services
from pricing.currencies import format_money

log = logging.getLogger(__name__)


def _day(value) -> str:
    return f"{value.day} {value:%b %Y}"


def _overview_page(request: HttpRequest) -> HttpResponse:
    return redirect(
        "platform-billing:overview", org_slug=request.tenant.organization.slug
    )


@tenant_view(OWNER)
def overview(request: HttpRequest) -> HttpResponse:
    o = pb.billing_overview(request.tenant.organization)
    return render(
        request,
        "billing/platform_billing.html",
        {
            "o": o,
            "payment_notice": selectors.platform_payment_notice_of(o.subscription),
            "nav": "billing",
        },
    )


@tenant_view(OWNER)
def change(request: HttpRequest, plan_slug: str) -> HttpResponse:
    """GET: what changing to this plan does (and costs now); POST: do it."""
    org = request.tenant.organization
    plan = get_object_or_404(pb.paid_plans(), slug=plan_slug)
    o = pb.billing_overview(org)
    if not o.active:
        # A trial organization buys a plan through Checkout (its first card).
        return redirect("monetization:upgrade", org_slug=org.slug, plan_slug=plan.slug)
    sub = o.subscription
    if request.method == "POST":
        try:
            result = pb.platform_plan_change(organization=org, plan=plan)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return _overview_page(request)
        if result.direction == pb.DOWNGRADE:
            messages.success(
                request,
                f"Your plan changes to {plan.name} on {_day(sub.next_invoice_at)}; "
                f"you keep {sub.plan.name} until then.",
            )
        else:
            _charge_now(request, result.invoice)
            paid = (
                f" {format_money(result.invoice.total_minor, result.invoice.currency)}"
                " for the rest of this month is charged to your card."
                if result.invoice
                else ""
            )
            messages.success(request, f"You are on the {plan.name} plan now.{paid}")
        return _overview_page(request)
    if sub.plan_id == plan.pk:
        return _overview_page(request)
    direction = pb.change_direction(sub.plan, plan)
    lines = pb.upgrade_lines(sub, plan, clock.now()) if direction == pb.UPGRADE else []
    return render(
        request,
        "billing/platform_plan_change.html",
        {
            "o": o,
            "plan": plan,
            "direction": direction,
            "lines": lines,
            "total": sum(line.amount_minor for line in lines),
            "past_due": sub.is_past_due,
            "nav": "billing",
        },
    )


def _charge_now(request: HttpRequest, invoice) -> None:
    """Push and pay an upgrade's prorations in this request, so the page shows them
    paid (the task enqueued on commit finds them done); a Stripe outage leaves it to
    that task."""
    if invoice is None:
        return
    from billing.tasks import push_invoice

    try:
        push_invoice(invoice.pk)
    except PaymentProviderError as exc:
        log.warning("upgrade invoice %s not pushed yet: %s", invoice.pk, exc)


def _undo(request: HttpRequest, service, message: str) -> HttpResponse:
    """Undo a change planned for the month's end; `message` names the plan kept."""
    try:
        sub = service(organization=request.tenant.organization)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, message.format(plan=sub.plan.name))
    return _overview_page(request)


@tenant_view(OWNER)
@require_POST
def keep(request: HttpRequest) -> HttpResponse:
    return _undo(request, pb.platform_plan_unschedule, "You stay on the {plan} plan.")


@tenant_view(OWNER)
def cancel(request: HttpRequest) -> HttpResponse:
    """GET: what cancelling does; POST: cancel at the end of the month."""
    org = request.tenant.organization
    o = pb.billing_overview(org)
    if not o.active:
        return _overview_page(request)
    if request.method == "POST":
        try:
            sub = pb.platform_plan_cancel(organization=org)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request,
                f"Your {sub.plan.name} plan ends on {_day(sub.next_invoice_at)}: "
                "nothing more is charged, and then you are on the Trial plan.",
            )
        return _overview_page(request)
    return render(
        request, "billing/platform_plan_cancel.html", {"o": o, "nav": "billing"}
    )


@tenant_view(OWNER)
@require_POST
def resume(request: HttpRequest) -> HttpResponse:
    return _undo(request, pb.platform_plan_resume, "You keep the {plan} plan.")


@tenant_view(OWNER)
@require_POST
def card(request: HttpRequest) -> HttpResponse:
    """Change card: Checkout in setup mode on the platform's account."""
    org = request.tenant.organization
    done = reverse("platform-billing:card-done", args=[org.slug])
    back = reverse("platform-billing:overview", args=[org.slug])
    try:
        url = pb.platform_card_checkout_start(
            organization=org,
            success_url=request.build_absolute_uri(done)
            + "?session_id={CHECKOUT_SESSION_ID}",
            cancel_url=request.build_absolute_uri(back),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    except PaymentProviderError as exc:
        log.warning("card checkout for %s: %s", org, exc)
        messages.error(request, provider_failed(exc))
    else:
        return redirect(url)
    return _overview_page(request)


@tenant_view(OWNER)
def card_done(request: HttpRequest) -> HttpResponse:
    org = request.tenant.organization
    try:
        sub, _changed = services.platform_checkout_complete(
            session_id=request.GET.get("session_id", ""), organization=org
        )
    except services.CheckoutNotComplete as exc:
        messages.error(request, f"Your card has not changed: {exc}")
        return _overview_page(request)
    except PaymentProviderError as exc:
        messages.error(request, provider_failed(exc))
        return _overview_page(request)
    if sub.is_past_due:
        # Pay the failed invoices now, in this request, so the page says how it went.
        from billing.tasks import retry_platform_payment

        try:
            retry_platform_payment(sub.pk)
        except PaymentProviderError as exc:
            log.warning("platform retry for %s: %s", org, exc)
        sub.refresh_from_db()
    if sub.is_past_due:
        messages.warning(
            request,
            f"Your new card •••• {sub.card_last4} is saved, but the failed payment "
            "is still unpaid.",
        )
    else:
        messages.success(
            request,
            f"Your new card {sub.card_brand.title()} •••• {sub.card_last4} is saved.",
        )
    return _overview_page(request)
