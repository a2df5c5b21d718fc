from __future__ import annotations

import csv
from datetime import UTC, datetime, time, timedelta

from django.http import (
    HttpRequest,
    HttpResponse,
    JsonResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.utils import timezone

from apimon.tenancy import MEMBERS, PUBLISHERS, tenant_view
from gateway import selectors
from gateway.forms import UsageFilterForm


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
    """What the chart polls: per hour, per day and the current quota window."""
    subscription = selectors.subscription_for_subscriber(request, subscription_id)
    now = timezone.now()
    series = selectors.usage_series(subscription, now=now)
    quota = selectors.quota_status(subscription, now=now)
    if quota is not None:
        quota = {
            **quota,
            "start": quota["start"].isoformat(),
            "end": quota["end"].isoformat(),
        }
    response = JsonResponse(
        {
            "generated_at": now.isoformat(),
            "hourly": series["hourly"].__dict__,
            "daily": series["daily"].__dict__,
            "quota": quota,
        }
    )
    response["Cache-Control"] = "no-store"
    return response


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
    context: dict = {"form": form}
    if form.is_valid():
        start, end = _range(form)
        api = form.cleaned_data["api"]
        api_id = api.pk if api else None
        context["totals"] = selectors.publisher_usage_totals(
            org, start=start, end=end, api_id=api_id
        )
        context["daily"] = selectors.publisher_daily_totals(
            org, start=start, end=end, api_id=api_id
        )
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


class _Echo:
    def write(self, value):
        return value


@tenant_view(PUBLISHERS)
def publisher_usage_csv(request: HttpRequest) -> HttpResponse:
    """Usage rows (day × API × tier × subscription), streamed as CSV."""
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
        yield writer.writerow(
            ["day", "api", "tier", "application", "subscriber", "subscription_id",
             "requests"]
        )  # fmt: skip
        for row in rows:
            yield writer.writerow(
                [row.day, row.api, row.tier, row.application, row.subscriber,
                 row.subscription_id, row.count]
            )  # fmt: skip

    filename = (
        f"usage-{org.slug}-{form.cleaned_data['start']}-{form.cleaned_data['end']}.csv"
    )
    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
