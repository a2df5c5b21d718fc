from __future__ import annotations

import csv
from datetime import UTC, datetime, time, timedelta

from django.contrib import messages
from django.core.exceptions import RequestDataTooBig
from django.http import (
    HttpRequest,
    HttpResponse,
    JsonResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apimon import clock, jsonbody
from apimon.tenancy import MEMBERS, OWNER, PUBLISHERS, tenant_view
from gateway import ingest, selectors
from gateway.forms import IngestTokenForm, UsageFilterForm
from gateway.models import IngestToken
from store import page_cache


@tenant_view(MEMBERS)
def subscription_usage(request: HttpRequest, subscription_id: int) -> HttpResponse:
    subscription = selectors.subscription_for_subscriber(request, subscription_id)
    return render(
        request,
        "gateway/subscription_usage.html",
        {"subscription": subscription},
    )


@tenant_view(MEMBERS)
def subscription_usage_data(request: HttpRequest, subscription_id: int) -> JsonResponse:
    """What the chart polls: per hour, per day and the current quota window, of
    requests and of each other meter of the API."""
    subscription = selectors.subscription_for_subscriber(request, subscription_id)
    now = clock.now()
    series = selectors.usage_series(subscription, now=now)
    meters = [
        {
            **m,
            "hourly": m["hourly"].__dict__,
            "daily": m["daily"].__dict__,
            "quota": _quota_json(m["quota"]),
        }
        for m in selectors.meter_usage(subscription, now=now)
    ]
    response = JsonResponse(
        {
            "generated_at": now.isoformat(),
            "hourly": series["hourly"].__dict__,
            "daily": series["daily"].__dict__,
            "quota": _quota_json(selectors.quota_status(subscription, now=now)),
            # The API's other meters, in their units (docs/metering.md).
            "meters": meters,
        }
    )
    response["Cache-Control"] = "no-store"
    return response


def _quota_json(quota: dict | None) -> dict | None:
    if quota is None:
        return None
    return {
        **quota,
        "start": quota["start"].isoformat(),
        "end": quota["end"].isoformat(),
    }


def _range(form: UsageFilterForm) -> tuple[datetime, datetime]:
    start = datetime.combine(form.cleaned_data["start"], time.min, UTC)
    end = datetime.combine(form.cleaned_data["end"], time.min, UTC) + timedelta(days=1)
    return start, end


@tenant_view(PUBLISHERS)
def publisher_usage(request: HttpRequest) -> HttpResponse:
    """Usage per API, tier and subscriber over a date range (last 30 days unless
    chosen), with a daily chart and the CSV export of the same range."""
    org = request.tenant.organization
    form = UsageFilterForm(request.GET, organization=org)
    context: dict = {"form": form, "filter_fields": _filter_fields(org, form)}
    if form.is_valid():
        start, end = _range(form)
        api = form.cleaned_data["api"]
        api_id = api.pk if api else None
        # The meters' words, read once for the tables and the chart.
        meters = selectors.usage_meters(org, api_id=api_id)
        # The tables (per API, tier, subscriber; other meters) from one read.
        usage = selectors.publisher_usage(
            org, start=start, end=end, api_id=api_id, meters=meters
        )
        context["totals"] = usage.totals
        # Every meter's units per day: the chart shows the one the publisher picks.
        context["daily"] = selectors.publisher_daily_by_meter(
            org, start=start, end=end, api_id=api_id, meters=meters
        )
        context["meters"] = usage.meters
        query = QueryDict(mutable=True)
        query.update(
            {
                "start": str(form.cleaned_data["start"]),
                "end": str(form.cleaned_data["end"]),
            }
        )
        if api_id:
            query["api"] = str(api_id)
        context["query"] = query.urlencode()
    return render(request, "gateway/publisher_usage.html", context)


# The filter's values are dates and an id: longer ones are not kept.
_KEPT_FILTER = frozenset({"start", "end", "api"})
_KEPT_VALUE_LENGTH = 32


def _filter_fields(org, form: UsageFilterForm) -> str:
    """The filter form's fields in HTML. Django renders each widget through its
    templates (a third of the page's rendering): the same values give the same
    HTML, so it is kept in the page cache, per organization (its APIs are the
    choices) and per the form's values (today's range unless chosen), and retired
    with the catalog. Values other than a filter's short ones are rendered each
    time."""

    def fields() -> str:
        return render_to_string("gateway/_usage_filter_fields.html", {"form": form})

    data = form.data
    if set(data) <= _KEPT_FILTER and all(
        isinstance(v, str) and len(v) <= _KEPT_VALUE_LENGTH for v in data.values()
    ):
        return page_cache.cached(
            org.pk, ("usage-filter-fields", *sorted(data.items())), fields
        )
    return fields()


class _Echo:
    def write(self, value):
        return value


@tenant_view(PUBLISHERS)
def publisher_usage_csv(request: HttpRequest) -> HttpResponse:
    """Usage rows (day × API × tier × subscription × meter), streamed as CSV."""
    org = request.tenant.organization
    form = UsageFilterForm(request.GET.copy(), organization=org)
    if not form.is_valid():
        return HttpResponse(
            "Bad filter: " + form.errors.as_text(),
            status=400,
            content_type="text/plain",
        )
    start, end = _range(form)
    api = form.cleaned_data["api"]
    rows = selectors.publisher_usage_rows(
        org, start=start, end=end, api_id=api.pk if api else None
    )
    writer = csv.writer(_Echo())

    def lines():
        # The seventh column is the row's quantity in its meter's units (requests
        # for the `requests` meter, as before meters); `meter` names the meter.
        yield writer.writerow(
            ["day", "api", "tier", "application", "subscriber", "subscription_id",
             "quantity", "meter"]
        )  # fmt: skip
        for row in rows:
            yield writer.writerow(
                [row.day, row.api, row.tier, row.application, row.subscriber,
                 row.subscription_id, row.count, row.meter]
            )  # fmt: skip

    filename = (
        f"usage-{org.slug}-{form.cleaned_data['start']}-{form.cleaned_data['end']}.csv"
    )
    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# ---- the usage ingest API (external gateways; docs/metering.md) -----------------


def _api_error(status: int, code: str, message: str, **headers) -> JsonResponse:
    response = JsonResponse(
        {"error": {"code": code, "message": message}}, status=status
    )
    response["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


@csrf_exempt
def usage_events(request: HttpRequest) -> HttpResponse:
    """POST /api/usage/events: a batch of usage events, with an ingest token."""
    if request.method != "POST":
        return _api_error(
            405, "method_not_allowed", "POST a batch of events.", Allow="POST"
        )
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return _api_error(
            401,
            "missing_token",
            "Send an ingest token as 'Authorization: Bearer <token>'.",
            WWW_Authenticate='Bearer realm="apimon-ingest"',
        )
    token = ingest.token_for(raw.strip())
    if token is None:
        return _api_error(401, "invalid_token", "The ingest token is not valid.")
    try:
        payload = ingest.loads(request.body)
    except RequestDataTooBig:
        return _api_error(413, "too_large", "The batch is too large; send less.")
    except jsonbody.JsonBodyError as exc:
        return _api_error(400, exc.code, exc.message)
    events = payload.get("events") if isinstance(payload, dict) else payload
    if not isinstance(events, list) or not events:
        return _api_error(
            400,
            "bad_batch",
            'Send a JSON list of events, or {"events": [...]}, with at least one.',
        )
    if len(events) > ingest.MAX_EVENTS:
        return _api_error(
            400,
            "too_many_events",
            f"At most {ingest.MAX_EVENTS} events per request.",
        )
    result = ingest.ingest_events(token=token, events=events)
    response = HttpResponse(
        ingest.dumps(result.as_json()), content_type="application/json"
    )
    response["Cache-Control"] = "no-store"
    return response


# ---- ingest tokens, in the publisher console (owners) ----------------------------


@tenant_view(OWNER)
def ingest_tokens(request: HttpRequest) -> HttpResponse:
    """List, create (shown once) and revoke the organization's ingest tokens."""
    org = request.tenant.organization
    issued = None
    if request.method == "POST":
        form = IngestTokenForm(request.POST)
        if form.is_valid():
            issued = ingest.ingest_token_create(
                organization=org, actor=request.user, name=form.cleaned_data["name"]
            )
        else:
            for error in form.errors["name"]:
                messages.error(request, f"Token name: {error}")
    response = render(
        request,
        "gateway/ingest_tokens.html",
        {
            "tokens": IngestToken.objects.filter(organization=org),
            "issued": issued,
            "nav": "ingest",
        },
    )
    response["Cache-Control"] = "no-store"  # the new token is on this page once
    return response


@tenant_view(OWNER)
@require_POST
def ingest_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    org = request.tenant.organization
    token = get_object_or_404(IngestToken, organization=org, pk=token_id)
    ingest.ingest_token_revoke(token=token)
    messages.success(
        request, f"The token {token.prefix}… is revoked: it stops working now."
    )
    return redirect("gateway:ingest-tokens", org_slug=org.slug)
