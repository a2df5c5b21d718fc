"""The demo catalog of organization "acme" (called from `apimon.demo.seed`): four
tiers covering the pricing models and two published APIs. Idempotent: rows that
exist (by tier name, by API context + version) are left as they are."""

from __future__ import annotations

import json
from decimal import Decimal

from django.conf import settings

from apimon.models import Organization, User
from pricing.rating import Band, Pricing, PricingModel
from publisher import services
from publisher.models import (
    Api,
    ApiState,
    BillingCycle,
    LifecycleAction,
    QuotaUnit,
    RateUnit,
    Tier,
)
from publisher.openapi import parse_openapi

TIERS = [
    (
        "Free",
        "Try any API: 1,000 requests a day.",
        services.TierLimits(
            quota_limit=1_000,
            quota_unit=QuotaUnit.DAY,
            stop_on_quota_reach=True,
            rate_limit=5,
            rate_unit=RateUnit.SECOND,
        ),
        services.TierPrice(),
    ),
    (
        "Starter",
        "$19 a month includes 10,000 requests; then $0.50 per 1,000.",
        services.TierLimits(
            quota_limit=10_000,
            quota_unit=QuotaUnit.PERIOD,
            stop_on_quota_reach=False,  # overage is billed, not refused
            rate_limit=20,
            rate_unit=RateUnit.SECOND,
        ),
        services.TierPrice(
            pricing=Pricing(
                model=PricingModel.FLAT_PLUS_OVERAGE,
                currency="usd",
                fixed_fee=Decimal("19.00"),
                included_requests=10_000,
                overage_price=Decimal("0.50"),
                overage_block_size=1_000,
            ),
            billing_cycle=BillingCycle.MONTH,
        ),
    ),
    (
        "Pay as you go",
        "$0.0004 per request, billed monthly. No commitment.",
        services.TierLimits(rate_limit=50, rate_unit=RateUnit.SECOND),
        services.TierPrice(
            pricing=Pricing(
                model=PricingModel.PER_UNIT,
                currency="usd",
                unit_price=Decimal("0.0004"),
            ),
            billing_cycle=BillingCycle.MONTH,
        ),
    ),
    (
        "Enterprise",
        "$99 a month plus graduated per-request prices that fall with volume.",
        services.TierLimits(rate_limit=200, rate_unit=RateUnit.SECOND),
        services.TierPrice(
            pricing=Pricing(
                model=PricingModel.GRADUATED,
                currency="usd",
                bands=(
                    Band(100_000, Decimal("0.0010"), Decimal("99")),
                    Band(1_000_000, Decimal("0.0006")),
                    Band(None, Decimal("0.0003")),
                ),
            ),
            billing_cycle=BillingCycle.MONTH,
        ),
    ),
]

WEATHER_DOCS = """\
# Weather API

Current conditions and a 7-day forecast for any city.

## Authentication

Send your API key in the `Authorization` header (or `X-API-Key`):

```bash
curl -H "Authorization: Bearer $APIMON_KEY" \\
  "$GATEWAY/gateway/acme/weather/v1/current?city=Lisbon"
```

## Example answer

```json
{"city": "Lisbon", "observed_at": "2026-06-01T12:00:00+00:00", "temperature_c": 21.5,
 "condition": "sunny", "humidity_percent": 60, "wind_kph": 12.0}
```

| Endpoint | What it returns |
|----------|-----------------|
| `GET /current?city=` | current conditions |
| `GET /forecast?city=&days=` | up to 7 days of forecast |

Errors use JSON bodies: `401` without a key, `429` over your quota (see `Retry-After`).
"""

QUOTES_DOCS = """\
# Quotes API

Famous quotes, one at a time or by id.

```bash
curl -H "X-API-Key: $APIMON_KEY" "$GATEWAY/gateway/acme/quotes/v1/random"
```
"""


def _operation(summary: str, params: list[dict] | None = None) -> dict:
    return {
        "summary": summary,
        "parameters": params or [],
        "responses": {"200": {"description": "OK"}, "401": {"description": "No key"}},
    }


def _query(
    name: str, required: bool = True, kind: str = "string", example=None
) -> dict:
    param = {
        "name": name,
        "in": "query",
        "required": required,
        "schema": {"type": kind},
    }
    if example is not None:
        param["example"] = example
    return param


WEATHER_OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "Weather API", "version": "v1"},
    "paths": {
        "/current": {
            "get": _operation(
                "Current conditions in a city", [_query("city", example="Lisbon")]
            )
        },
        "/forecast": {
            "get": _operation(
                "Daily forecast for up to 7 days",
                [
                    _query("city", example="Lisbon"),
                    _query("days", required=False, kind="integer"),
                ],
            )
        },
    },
}

QUOTES_OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "Quotes API", "version": "v1"},
    "paths": {
        "/random": {"get": _operation("A random quote")},
        "/quotes/{id}": {
            "get": _operation(
                "A quote by id",
                [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
            )
        },
    },
}


def seed_catalog(org: Organization, actor: User) -> tuple[list[Tier], list[Api]]:
    tiers = {}
    for name, description, limits, price in TIERS:
        tier = Tier.objects.filter(organization=org, name=name).first()
        if tier is None:
            tier = services.tier_create(
                organization=org,
                actor=actor,
                name=name,
                description=description,
                limits=limits,
                price=price,
            )
        tiers[name] = tier

    base = settings.SAMPLE_API_URL
    apis = [
        _api(
            org,
            actor,
            name="Weather API",
            context="weather",
            backend_url=f"{base}/weather",
            description="Current conditions and 7-day forecasts for any city.",
            documentation=WEATHER_DOCS,
            tags=["weather", "forecast"],
            spec=WEATHER_OPENAPI,
            tiers=[tiers["Free"], tiers["Starter"], tiers["Pay as you go"]],
        ),
        _api(
            org,
            actor,
            name="Quotes API",
            context="quotes",
            backend_url=f"{base}/quotes",
            description="Famous quotes, at random or by id.",
            documentation=QUOTES_DOCS,
            tags=["quotes"],
            spec=QUOTES_OPENAPI,
            tiers=[tiers["Free"], tiers["Enterprise"]],
        ),
    ]
    return list(tiers.values()), apis


def _api(org, actor, *, context, tiers, spec, **fields) -> Api:
    api = Api.objects.filter(organization=org, context=context, version="v1").first()
    if api is not None:
        return api
    api = services.api_create(
        organization=org,
        actor=actor,
        version="v1",
        context=context,
        openapi_spec=parse_openapi(json.dumps(spec), f"{context}.json"),
        openapi_filename=f"{context}-openapi.json",
        **fields,
    )
    services.api_set_tiers(api=api, tiers=tiers, actor=actor)
    services.api_transition(api=api, action=LifecycleAction.PUBLISH, actor=actor)
    assert api.state == ApiState.PUBLISHED
    return api
