"""The publisher's side of subscriptions: /t/<org>/publisher/subscriptions/… (routed
in publisher/urls.py, names `publisher:subscription-*`)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apimon.tenancy import PUBLISHERS, tenant_view
from publisher.models import Api, Tier
from store import selectors, services
from store.forms import BlockForm, PublisherFilterForm
from store.models import SubscriptionState

PAGE_SIZE = 50


@tenant_view(PUBLISHERS)
def subscription_list(request: HttpRequest) -> HttpResponse:
    org = request.tenant.organization
    form = PublisherFilterForm(
        request.GET,
        apis=Api.objects.filter(organization=org).order_by("name", "version"),
        tiers=Tier.objects.filter(organization=org).order_by("name"),
        states=SubscriptionState.choices,
    )
    filters = form.cleaned_data if form.is_valid() else {}
    subs = selectors.publisher_subscriptions(
        organization=org,
        api_id=filters.get("api"),
        tier_id=filters.get("tier"),
        state=filters.get("state") or "",
        q=filters.get("q") or "",
    )
    page = Paginator(subs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "filtered": any(filters.values()),
        "counts": selectors.state_counts(org),
        "states": SubscriptionState.choices,
        "nav": "subscriptions",
    }
    return render(request, "store/publisher_subscription_list.html", context)


def _subscription(request: HttpRequest, subscription_id: int):
    return selectors.get_org_subscription(
        organization=request.tenant.organization, subscription_id=subscription_id
    )


@tenant_view(PUBLISHERS)
def subscription_detail(request: HttpRequest, subscription_id: int) -> HttpResponse:
    sub = _subscription(request, subscription_id)
    context = {
        "subscription": sub,
        "events": selectors.subscription_events(sub),
        "form": BlockForm(),
        "nav": "subscriptions",
    }
    return render(request, "store/publisher_subscription_detail.html", context)


@tenant_view(PUBLISHERS)
@require_POST
def subscription_block(request: HttpRequest, subscription_id: int) -> HttpResponse:
    sub = _subscription(request, subscription_id)
    form = BlockForm(request.POST)
    if form.is_valid():
        try:
            services.subscription_block(
                subscription=sub, actor=request.user, reason=form.cleaned_data["reason"]
            )
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                form.add_error("reason", exc.error_dict.get("reason"))
            else:
                form.add_error(None, exc)
        else:
            messages.success(
                request, "The subscription is blocked: the gateway refuses its calls."
            )
            return _to_detail(request, sub)
    context = {
        "subscription": sub,
        "events": selectors.subscription_events(sub),
        "form": form,
        "nav": "subscriptions",
    }
    return render(
        request, "store/publisher_subscription_detail.html", context, status=400
    )


@tenant_view(PUBLISHERS)
@require_POST
def subscription_unblock(request: HttpRequest, subscription_id: int) -> HttpResponse:
    sub = _subscription(request, subscription_id)
    try:
        sub = services.subscription_unblock(subscription=sub, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request, f"The subscription is unblocked ({sub.get_state_display()})."
        )
    return _to_detail(request, sub)


def _to_detail(request, sub) -> HttpResponse:
    return redirect(
        "publisher:subscription-detail",
        org_slug=request.tenant.organization.slug,
        subscription_id=sub.pk,
    )
