"""The publisher console: /t/<org>/publisher/… for owners and publishers."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from apimon import clock
from apimon.forms import SearchForm
from apimon.tenancy import PUBLISHERS, tenant_view
from apimon.web import add_service_errors, posted
from publisher import hooks, meters, price_preview, selectors, services
from publisher.forms import ApiForm, MeterForm, OfferForm, TierForm
from publisher.lifecycle import allowed_actions
from publisher.models import ApiState, LifecycleAction, QuotaUnit
from publisher.openapi import openapi_operations, openapi_title, operation_ids
from publisher.services import TierLimits, TierPrice


@tenant_view(PUBLISHERS)
def dashboard(request: HttpRequest) -> HttpResponse:
    organization = request.tenant.organization
    data = selectors.publisher_dashboard(organization=organization)
    # Requests counted (the gateway) and net revenue this month (billing).
    figures = hooks.dashboard_figures.collect(organization, clock.now())
    # The table of subscriptions per API and tier, rendered once per catalog version
    # and set of counts (a row per API and tier: the page's largest part).
    slug = organization.slug
    counts = tuple(
        (row.api.pk, *((tier.pk, n) for tier, n in row.tiers)) for row in data.apis
    )
    count_rows = hooks.catalog_cached(
        organization.pk,
        ("publisher-dashboard-rows", slug, counts),
        lambda: render_to_string(
            "publisher/_dashboard_rows.html", {"dash": data, "slug": slug}
        ),
    )
    return render(
        request,
        "publisher/dashboard.html",
        {
            "dash": data,
            "count_rows": count_rows,
            "state_rows": [
                (value, label, data.state_counts[value])
                for value, label in ApiState.choices
            ],
            "nav": "dashboard",
            **figures,
        },
    )


# -- APIs -------------------------------------------------------------------------


@tenant_view(PUBLISHERS)
def api_list(request: HttpRequest) -> HttpResponse:
    search = SearchForm(request.GET)
    terms = search.terms()
    q, state = (terms or {}).get("q", ""), request.GET.get("state", "")
    apis = selectors.api_list(
        organization=request.tenant.organization, q=q, state=state
    )
    if terms is None:
        apis = []
    context = {
        "apis": apis,
        "q": q,
        "state": state,
        "states": ApiState.choices,
        "search_errors": search.error_text(),
    }
    return render(request, "publisher/api_list.html", {**context, "nav": "apis"})


@tenant_view(PUBLISHERS)
def api_create(request: HttpRequest) -> HttpResponse:
    org = request.tenant.organization
    form = ApiForm(
        posted(request),
        request.FILES if request.method == "POST" else None,
        organization=org,
    )
    if request.method == "POST" and form.is_valid():
        try:
            api = services.api_create(
                organization=org, actor=request.user, **form.service_kwargs()
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request, f"{api} is created. Offer it on a tier, then publish it."
            )
            return redirect("publisher:api-tiers", org_slug=org.slug, api_id=api.pk)
    return render(
        request, "publisher/api_form.html", {"form": form, "api": None, "nav": "apis"}
    )


@tenant_view(PUBLISHERS)
def api_detail(request: HttpRequest, api_id: int) -> HttpResponse:
    org = request.tenant.organization
    api = selectors.get_api(organization=org, api_id=api_id)
    counts = selectors.api_subscription_counts(api=api)
    offers = [
        (offer.tier, counts.get(offer.tier_id, 0))
        for offer in api.offers.select_related("tier__current_version").order_by(
            "tier__name"
        )
    ]
    ids = operation_ids(api.openapi_spec)
    meter_list = meters.meters_of(api)
    context = {
        "api": api,
        "offers": offers,
        "live_subscriptions": sum(counts.values()),
        "actions": [LifecycleAction(a) for a in allowed_actions(api)],
        "history": api.state_changes.select_related("actor")[:50],
        "operations": openapi_operations(api.openapi_spec),
        "openapi_title": openapi_title(api.openapi_spec),
        "tags": api.tags.all(),
        "meters": meter_list,
        "stale_operations": [
            (meter, note)
            for meter in meter_list
            for note in meters.stale_operation_ids(meter, ids)
        ],
        "nav": "apis",
    }
    return render(request, "publisher/api_detail.html", context)


@tenant_view(PUBLISHERS)
def api_edit(request: HttpRequest, api_id: int) -> HttpResponse:
    org = request.tenant.organization
    api = selectors.get_api(organization=org, api_id=api_id)
    form = ApiForm(
        posted(request),
        request.FILES if request.method == "POST" else None,
        organization=org,
        api=api,
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.api_update(api=api, actor=request.user, **form.service_kwargs())
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"{api} is saved.")
            return redirect("publisher:api-detail", org_slug=org.slug, api_id=api.pk)
    return render(
        request, "publisher/api_form.html", {"form": form, "api": api, "nav": "apis"}
    )


@tenant_view(PUBLISHERS)
def api_lifecycle(request: HttpRequest, api_id: int, action: str) -> HttpResponse:
    """GET: what `action` will do, with a confirm button. POST: do it."""
    org = request.tenant.organization
    api = selectors.get_api(organization=org, api_id=api_id)
    if action not in LifecycleAction.values:
        raise Http404("No such action")
    if request.method == "POST":
        try:
            change = services.api_transition(api=api, action=action, actor=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            text = f"{api} is now {ApiState(change.to_state).label.lower()}."
            messages.success(request, f"{text} {change.note}".strip())
        return redirect("publisher:api-detail", org_slug=org.slug, api_id=api.pk)
    preview = selectors.lifecycle_preview(api=api, action=action)
    return render(
        request,
        "publisher/api_lifecycle.html",
        {"api": api, "preview": preview, "nav": "apis"},
    )


@tenant_view(PUBLISHERS)
def api_tiers(request: HttpRequest, api_id: int) -> HttpResponse:
    org = request.tenant.organization
    api = selectors.get_api(organization=org, api_id=api_id)
    tiers = selectors.offerable_tiers(api=api)
    form = OfferForm(
        posted(request),
        tiers=tiers,
        initial_tiers=api.offers.values_list("tier_id", flat=True),
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.api_set_tiers(
                api=api, tiers=form.cleaned_data["tiers"], actor=request.user
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"The tiers of {api} are saved.")
            return redirect("publisher:api-detail", org_slug=org.slug, api_id=api.pk)
    return render(
        request,
        "publisher/api_tiers.html",
        {"api": api, "form": form, "tiers": tiers, "nav": "apis"},
    )


# -- meters -----------------------------------------------------------------------


def _meter_page(request, form: MeterForm, api, meter=None) -> HttpResponse:
    stale = []
    if meter is not None:
        stale = meters.stale_operation_ids(meter, operation_ids(api.openapi_spec))
    return render(
        request,
        "publisher/meter_form.html",
        {"form": form, "api": api, "meter": meter, "stale": stale, "nav": "apis"},
    )


@tenant_view(PUBLISHERS)
def meter_create(request: HttpRequest, api_id: int) -> HttpResponse:
    org = request.tenant.organization
    api = selectors.get_api(organization=org, api_id=api_id)
    form = MeterForm(posted(request), api=api)
    if request.method == "POST" and form.is_valid():
        try:
            meter = meters.meter_create(
                api=api, actor=request.user, **form.service_kwargs()
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"The meter “{meter.display_name}” is created.")
            return redirect("publisher:api-detail", org_slug=org.slug, api_id=api.pk)
    return _meter_page(request, form, api)


@tenant_view(PUBLISHERS)
def meter_edit(request: HttpRequest, api_id: int, meter_id: int) -> HttpResponse:
    org = request.tenant.organization
    api = selectors.get_api(organization=org, api_id=api_id)
    meter = selectors.get_meter(api=api, meter_id=meter_id)
    form = MeterForm(posted(request), api=api, meter=meter)
    if request.method == "POST" and "delete" in request.POST:
        try:
            meters.meter_delete(meter=meter, actor=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect(
                "publisher:meter-edit", org_slug=org.slug, api_id=api.pk,
                meter_id=meter.pk,
            )  # fmt: skip
        messages.success(request, f"The meter “{meter.display_name}” is deleted.")
        return redirect("publisher:api-detail", org_slug=org.slug, api_id=api.pk)
    if request.method == "POST" and form.is_valid():
        try:
            meters.meter_update(
                meter=meter, actor=request.user, **form.service_kwargs()
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"The meter “{meter.display_name}” is saved.")
            return redirect("publisher:api-detail", org_slug=org.slug, api_id=api.pk)
    return _meter_page(request, form, api, meter)


# -- tiers ------------------------------------------------------------------------


@tenant_view(PUBLISHERS)
def tier_list(request: HttpRequest) -> HttpResponse:
    org = request.tenant.organization
    show_archived = request.GET.get("archived") == "1"
    tiers = selectors.tier_list(organization=org, include_archived=show_archived)
    return render(
        request,
        "publisher/tier_list.html",
        {"tiers": tiers, "show_archived": show_archived, "nav": "tiers"},
    )


def _meters_by_key(organization) -> dict:
    return {m.key: m for m in meters.meters_for_pricing(organization.pk)}


def _preview(form: TierForm) -> dict:
    """The price preview partial's context for a validated (or failed) form."""
    if form.tier_price is None:
        return {"preview_errors": form.pricing_errors()}
    data = form.cleaned_data
    limits = TierLimits(
        quota_limit=data.get("quota_limit"),
        quota_unit=data.get("quota_unit") or QuotaUnit.MONTH,
        stop_on_quota_reach=data.get("stop_on_quota_reach", False),
    )
    meters_known = {mf.meter.key: mf.meter for mf in form.meter_forms}
    return _preview_context(
        price_preview.tier_preview(
            price=form.tier_price, limits=limits, meters=meters_known
        )
    )


def _preview_context(preview) -> dict:
    if preview is None:
        return {"preview_free": True}
    return {"preview": preview}


def _version_preview(version) -> dict:
    if version is None:
        return {}
    tier = version.tier
    return _preview_context(
        price_preview.tier_preview(
            price=TierPrice.of(version),
            limits=TierLimits.of(tier),
            meters=_meters_by_key(tier.organization),
        )
    )


def _tier_form_page(request, form: TierForm, tier=None) -> HttpResponse:
    if form.is_bound:
        preview = _preview(form)
    elif tier is not None:
        preview = _version_preview(tier.current_version)
    else:
        preview = {"preview_free": True}  # the form starts on the FREE plan
    live = selectors.tier_live_subscription_count(tier=tier) if tier else 0
    return render(
        request,
        "publisher/tier_form.html",
        {"form": form, "tier": tier, "live": live, "nav": "tiers", **preview},
    )


@tenant_view(PUBLISHERS)
def tier_create(request: HttpRequest) -> HttpResponse:
    org = request.tenant.organization
    form = TierForm(posted(request), organization=org)
    if request.method == "POST" and form.is_valid():
        try:
            tier = services.tier_create(
                organization=org,
                actor=request.user,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                limits=form.limits(),
                price=form.price(),
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"The tier {tier.name} is created.")
            return redirect("publisher:tier-detail", org_slug=org.slug, tier_id=tier.pk)
    return _tier_form_page(request, form)


@tenant_view(PUBLISHERS)
def tier_detail(request: HttpRequest, tier_id: int) -> HttpResponse:
    org = request.tenant.organization
    tier = selectors.get_tier(organization=org, tier_id=tier_id)
    versions = selectors.tier_versions(tier=tier)
    current = next((v for v in versions if v.pk == tier.current_version_id), None)
    context = {
        "tier": tier,
        "current": current,
        "versions": versions,
        **_version_preview(current),
        "apis": tier.apis.order_by("name", "version"),
        "live": sum(v.subscription_count for v in versions),
        "nav": "tiers",
    }
    return render(request, "publisher/tier_detail.html", context)


@tenant_view(PUBLISHERS)
def tier_edit(request: HttpRequest, tier_id: int) -> HttpResponse:
    org = request.tenant.organization
    tier = selectors.get_tier(organization=org, tier_id=tier_id)
    form = TierForm(posted(request), organization=org, tier=tier)
    if request.method == "POST" and form.is_valid():
        try:
            result = services.tier_update(
                tier=tier,
                actor=request.user,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                limits=form.limits(),
                price=form.price(),
                migrate_existing=form.cleaned_data.get("migrate_existing", False),
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _update_message(result))
            return redirect("publisher:tier-detail", org_slug=org.slug, tier_id=tier.pk)
    return _tier_form_page(request, form, tier)


def _update_message(result: services.TierUpdate) -> str:
    tier = result.tier
    parts = [f"The tier {tier.name} is saved."]
    if result.price_outcome == "new_version":
        version = tier.current_version
        moved = (
            "Existing subscribers move to it at their next period."
            if version.migrate_existing
            else "Existing subscribers keep their price."
        )
        parts.append(
            f"The new price is version {version.number}, for new subscriptions. {moved}"
        )
    elif result.price_outcome == "edited":
        parts.append("No subscription used the old price, so it was changed in place.")
    if result.limits_changed:
        parts.append("The new limits apply to every subscriber now.")
    return " ".join(parts)


@tenant_view(PUBLISHERS)
def tier_archive(request: HttpRequest, tier_id: int) -> HttpResponse:
    """GET: confirm. POST with archive=1 archives, archive=0 unarchives."""
    org = request.tenant.organization
    tier = selectors.get_tier(organization=org, tier_id=tier_id)
    if request.method == "POST":
        if request.POST.get("archive") == "0":
            services.tier_unarchive(tier=tier, actor=request.user)
            messages.success(request, f"The tier {tier.name} is offered again.")
        else:
            services.tier_archive(tier=tier, actor=request.user)
            messages.success(
                request,
                f"The tier {tier.name} is archived: no new subscriber can choose it; "
                "its subscriptions continue.",
            )
        return redirect("publisher:tier-detail", org_slug=org.slug, tier_id=tier.pk)
    context = {
        "tier": tier,
        "live": selectors.tier_live_subscription_count(tier=tier),
        "orphans": selectors.apis_left_without_tier(tier=tier),
        "nav": "tiers",
    }
    return render(request, "publisher/tier_archive.html", context)


@tenant_view(PUBLISHERS)
@require_POST
def tier_preview(request: HttpRequest) -> HttpResponse:
    """htmx: re-validate the posted tier form and render the price preview."""
    form = TierForm(request.POST, organization=request.tenant.organization)
    form.is_valid()
    return render(request, "publisher/_price_preview.html", _preview(form))
