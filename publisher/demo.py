"""The demo's catalogs (called from `apimon.demo.seed`): per organization, its tiers
and its published APIs, as data. Adding an API or a tier to the demo is an entry in
`CATALOGS` (its backend is a path of the bundled sample API, `sample_api/`).

Two APIs have meters besides requests: acme's Text generation API sells the tokens
the sample API reports (`Apimon-Meter-tokens`), and globex's FX rates API weighs its
operations in credits.

Idempotent: rows that exist (a tier by name, an API by context + version) are left
as they are."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from decimal import Decimal

from django.conf import settings

from apimon.models import Organization, User
from pricing.rating import Band, Pricing, PricingModel
from publisher import meters, operations, services
from publisher.models import (
    Api,
    ApiState,
    BillingCycle,
    LifecycleAction,
    MeterSource,
    QuotaUnit,
    RateUnit,
    Tier,
)
from publisher.openapi import parse_openapi

D = Decimal


@dataclass(frozen=True)
class DemoTier:
    name: str
    description: str
    limits: services.TierLimits
    price: services.TierPrice = field(default_factory=services.TierPrice)


@dataclass(frozen=True)
class DemoMeter:
    """A meter of a demo API other than requests (docs/metering.md, "Meters")."""

    key: str
    display_name: str
    unit_label: str
    source: str
    display_scale: int = 1
    operations: str = ""  # weighted operations, one "METHOD /path units" a line


@dataclass(frozen=True)
class DemoApi:
    name: str
    context: str
    backend_path: str  # under SAMPLE_API_URL
    description: str
    documentation: str
    tags: tuple[str, ...]
    openapi: dict
    tiers: tuple[str, ...]  # names of the organization's DemoTiers
    meters: tuple[DemoMeter, ...] = ()


@dataclass(frozen=True)
class DemoCatalog:
    tiers: tuple[DemoTier, ...]
    apis: tuple[DemoApi, ...]


def _price(
    currency: str,
    *meters: services.MeterPriceSpec,
    fixed_fee: Decimal = Decimal(0),
    cycle: str = BillingCycle.MONTH,
    trial_days: int = 0,
) -> services.TierPrice:
    """A tier's price as the tier form writes it: one fixed fee and each meter's
    price (`_meter_price`), requests among them, in ``currency``."""
    return services.TierPrice.of_meters(
        currency=currency,
        fixed_fee=fixed_fee,
        billing_cycle=cycle,
        trial_days=trial_days,
        meters=(
            replace(m, pricing=replace(m.pricing, currency=currency)) for m in meters
        ),
    )


def _meter_price(
    key: str,
    model: PricingModel,
    *,
    quota: tuple[int, str] | None = None,
    **amounts,
) -> services.MeterPriceSpec:
    """A meter's price, `requests` included (per unit: the pages show it per the
    meter's scale; in the tier's currency, which `_price` sets), and an optional
    hard quota (limit, window; not for requests, whose quota is the tier's)."""
    return services.MeterPriceSpec(
        meter=key,
        pricing=Pricing(model=model, currency="", **amounts),
        quota_limit=quota[0] if quota else None,
        quota_unit=quota[1] if quota else QuotaUnit.MONTH,
    )


# --- OpenAPI documents -------------------------------------------------------------


def _operation(summary: str, params: list[dict] | None = None, body=None) -> dict:
    operation = {
        "summary": summary,
        "parameters": params or [],
        "responses": {"200": {"description": "OK"}, "401": {"description": "No key"}},
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
        operation["responses"]["201"] = operation["responses"].pop("200")
        operation["responses"]["201"]["description"] = "Created"
    return operation


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


def _path_param(name: str, kind: str = "string") -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": kind}}


def _openapi(title: str, paths: dict) -> dict:
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": "v1"},
        "paths": paths,
    }


WEATHER_OPENAPI = _openapi(
    "Weather API",
    {
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
)

QUOTES_OPENAPI = _openapi(
    "Quotes API",
    {
        "/random": {"get": _operation("A random quote")},
        "/quotes/{id}": {
            "get": _operation("A quote by id", [_path_param("id", "integer")])
        },
    },
)

AIR_OPENAPI = _openapi(
    "Air quality API",
    {
        "/current": {
            "get": _operation(
                "Air quality index and pollutants in a city",
                [_query("city", example="Berlin")],
            )
        }
    },
)

PAYMENTS_OPENAPI = _openapi(
    "Payments API",
    {
        "/charges": {
            "post": _operation(
                "Charge a card",
                body={
                    "type": "object",
                    "required": ["amount", "currency"],
                    "properties": {
                        "amount": {"type": "integer", "example": 1999},
                        "currency": {"type": "string", "example": "EUR"},
                        "reference": {"type": "string"},
                    },
                },
            )
        },
        "/charges/{id}": {"get": _operation("A charge by id", [_path_param("id")])},
    },
)

FRAUD_OPENAPI = _openapi(
    "Fraud score API",
    {
        "/score": {
            "get": _operation(
                "Score a payment before you capture it",
                [
                    _query("amount", kind="number", example=120.5),
                    _query("country", required=False, example="DE"),
                    _query("email", required=False),
                ],
            )
        }
    },
)

FX_OPENAPI = _openapi(
    "FX rates API",
    {
        "/latest": {
            "get": _operation(
                "Today's rates against a base currency",
                [_query("base", required=False, example="EUR")],
            )
        },
        "/convert": {
            "get": _operation(
                "Convert an amount",
                [
                    _query("from", example="USD"),
                    _query("to", example="JPY"),
                    _query("amount", kind="number", example=100),
                ],
            )
        },
    },
)

TEXT_OPENAPI = _openapi(
    "Text generation API",
    {
        "/complete": {
            "post": _operation(
                "Complete a prompt",
                body={
                    "type": "object",
                    "required": ["prompt"],
                    "properties": {
                        "prompt": {"type": "string", "example": "Tomorrow in Lisbon"},
                        "max_tokens": {"type": "integer", "example": 64},
                    },
                },
            )
        },
    },
)

# --- Documentation -----------------------------------------------------------------

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

TEXT_DOCS = """\
# Text generation API

A completion for a prompt, billed by the token: the prompt's tokens plus the
completion's (`usage` in the answer says how many).

```bash
curl -X POST -H "Authorization: Bearer $APIMON_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{"prompt": "Tomorrow in Lisbon", "max_tokens": 64}' \\
  "$GATEWAY/gateway/acme/text/v1/complete"
```

Text Free gives 20,000 tokens a day. Text Pro is $9 a month and graduated per
1,000 tokens: the first million of a month are included, then $0.02 per 1,000
up to ten million and $0.015 per 1,000 above.
"""

QUOTES_DOCS = """\
# Quotes API

Famous quotes, one at a time or by id.

```bash
curl -H "X-API-Key: $APIMON_KEY" "$GATEWAY/gateway/acme/quotes/v1/random"
```
"""

AIR_DOCS = """\
# Air quality API

The air quality index (US EPA scale) and the main pollutants of a city, hourly.

```bash
curl -H "Authorization: Bearer $APIMON_KEY" \\
  "$GATEWAY/gateway/acme/air/v1/current?city=Berlin"
```

Prices are in euros: a flat monthly plan, or weekly volume pricing for batch jobs.
"""

PAYMENTS_DOCS = """\
# Payments API

Take card payments in any of eight currencies. Amounts are integers in the
currency's minor unit (1999 = €19.99).

```bash
curl -X POST -H "Authorization: Bearer $APIMON_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{"amount": 1999, "currency": "EUR", "reference": "order-42"}' \\
  "$GATEWAY/gateway/globex/payments/v1/charges"
```

`GET /charges/{id}` returns a charge's status (`succeeded` or `declined`).
"""

FRAUD_DOCS = """\
# Fraud score API

A risk score from 0 to 99 and a decision (`approve`, `review`, `decline`) for a
payment, before you capture it.

```bash
curl -H "Authorization: Bearer $APIMON_KEY" \\
  "$GATEWAY/gateway/globex/fraud/v1/score?amount=120.50&country=DE"
```
"""

FX_DOCS = """\
# FX rates API

Daily exchange rates for USD, EUR, GBP, JPY, CHF, CAD, AUD and SEK, and
conversions.

```bash
curl -H "Authorization: Bearer $APIMON_KEY" \\
  "$GATEWAY/gateway/globex/fx/v1/convert?from=USD&to=JPY&amount=100"
```

Priced in yen: a weekly flat plan, or graduated monthly pricing with the first
10,000 calls free. FX metered also counts credits: a conversion weighs 3 credits,
the day's rates 1; 60,000 credits a month are included, then ¥3 per 100 credits.
"""

# --- The catalogs ------------------------------------------------------------------

M = PricingModel

CATALOGS: dict[str, DemoCatalog] = {
    # Acme Weather: weather data, priced in dollars and euros.
    "acme": DemoCatalog(
        tiers=(
            DemoTier(
                "Free",
                "Try any API: 1,000 requests a day.",
                services.TierLimits(
                    quota_limit=1_000,
                    quota_unit=QuotaUnit.DAY,
                    stop_on_quota_reach=True,
                    rate_limit=5,
                    rate_unit=RateUnit.SECOND,
                ),
            ),
            DemoTier(
                "Starter",
                "$19 a month includes 10,000 requests; then $0.50 per 1,000.",
                services.TierLimits(
                    quota_limit=10_000,
                    quota_unit=QuotaUnit.PERIOD,
                    stop_on_quota_reach=False,  # overage is billed, not refused
                    rate_limit=20,
                    rate_unit=RateUnit.SECOND,
                ),
                _price(
                    "usd",
                    _meter_price(
                        "requests",
                        M.FLAT_PLUS_OVERAGE,
                        included_requests=10_000,
                        overage_price=D("0.50"),
                        overage_block_size=1_000,
                    ),
                    fixed_fee=D("19.00"),
                ),
            ),
            DemoTier(
                "Pay as you go",
                "$0.0004 per request, billed monthly. No commitment.",
                services.TierLimits(rate_limit=50, rate_unit=RateUnit.SECOND),
                _price(
                    "usd", _meter_price("requests", M.PER_UNIT, unit_price=D("0.0004"))
                ),
            ),
            DemoTier(
                "Enterprise",
                "$99 a month plus graduated per-request prices that fall with volume.",
                services.TierLimits(rate_limit=200, rate_unit=RateUnit.SECOND),
                _price(
                    "usd",
                    _meter_price(
                        "requests",
                        M.GRADUATED,
                        bands=(
                            Band(100_000, D("0.0010"), D("99")),
                            Band(1_000_000, D("0.0006")),
                            Band(None, D("0.0003")),
                        ),
                    ),
                ),
            ),
            DemoTier(
                "Europe Pro",
                "€29 a month for up to 50,000 requests a month.",
                services.TierLimits(
                    quota_limit=50_000,
                    quota_unit=QuotaUnit.MONTH,
                    stop_on_quota_reach=True,
                    rate_limit=20,
                    rate_unit=RateUnit.SECOND,
                ),
                _price("eur", fixed_fee=D("29.00")),
            ),
            DemoTier(
                "Europe Volume",
                "Weekly volume pricing in euros: the more you call, the less each "
                "call costs.",
                services.TierLimits(rate_limit=100, rate_unit=RateUnit.SECOND),
                _price(
                    "eur",
                    _meter_price(
                        "requests",
                        M.VOLUME,
                        bands=(
                            Band(50_000, D("0.0009")),
                            Band(500_000, D("0.0006"), D("5")),
                            Band(None, D("0.0004"), D("20")),
                        ),
                    ),
                    cycle=BillingCycle.WEEK,
                ),
            ),
            DemoTier(
                "Text Free",
                "Try the text API: 20,000 tokens a day, free.",
                services.TierLimits(rate_limit=2, rate_unit=RateUnit.SECOND),
                _price(
                    "usd", _meter_price("tokens", M.FREE, quota=(20_000, QuotaUnit.DAY))
                ),
            ),
            DemoTier(
                "Text Pro",
                "$9 a month with a million tokens, then $0.02 per 1,000 tokens, "
                "$0.015 above ten million.",
                services.TierLimits(rate_limit=20, rate_unit=RateUnit.SECOND),
                _price(
                    "usd",
                    _meter_price(
                        "tokens",
                        M.GRADUATED,
                        bands=(
                            Band(1_000_000, D("0")),
                            Band(10_000_000, D("0.00002")),
                            Band(None, D("0.000015")),
                        ),
                    ),
                    fixed_fee=D("9.00"),
                ),
            ),
        ),
        apis=(
            DemoApi(
                name="Weather API",
                context="weather",
                backend_path="/weather",
                description="Current conditions and 7-day forecasts for any city.",
                documentation=WEATHER_DOCS,
                tags=("weather", "forecast"),
                openapi=WEATHER_OPENAPI,
                tiers=("Free", "Starter", "Pay as you go"),
            ),
            DemoApi(
                name="Quotes API",
                context="quotes",
                backend_path="/quotes",
                description="Famous quotes, at random or by id.",
                documentation=QUOTES_DOCS,
                tags=("quotes",),
                openapi=QUOTES_OPENAPI,
                tiers=("Free", "Enterprise"),
            ),
            DemoApi(
                name="Air quality API",
                context="air",
                backend_path="/air",
                description="Hourly air quality index and pollutants for any city.",
                documentation=AIR_DOCS,
                tags=("weather", "air quality"),
                openapi=AIR_OPENAPI,
                tiers=("Free", "Europe Pro", "Europe Volume"),
            ),
            DemoApi(
                name="Text generation API",
                context="text",
                backend_path="/text/v1",
                description="Completions for your prompts, billed by the token.",
                documentation=TEXT_DOCS,
                tags=("text", "ai"),
                openapi=TEXT_OPENAPI,
                tiers=("Text Free", "Text Pro"),
                meters=(
                    DemoMeter(
                        "tokens",
                        "Tokens",
                        "token",
                        MeterSource.RESPONSE,
                        display_scale=1_000,
                    ),
                ),
            ),
        ),
    ),
    # Globex Payments: payments APIs, priced in dollars, euros and yen.
    "globex": DemoCatalog(
        tiers=(
            DemoTier(
                "Sandbox",
                "Build and test: 100 requests a day, free.",
                services.TierLimits(
                    quota_limit=100,
                    quota_unit=QuotaUnit.DAY,
                    stop_on_quota_reach=True,
                    rate_limit=2,
                    rate_unit=RateUnit.SECOND,
                ),
            ),
            DemoTier(
                "Launch",
                "$49 a month includes 20,000 calls, then $1 per 1,000. 14 days free.",
                services.TierLimits(rate_limit=25, rate_unit=RateUnit.SECOND),
                _price(
                    "usd",
                    _meter_price(
                        "requests",
                        M.FLAT_PLUS_OVERAGE,
                        included_requests=20_000,
                        overage_price=D("1.00"),
                        overage_block_size=1_000,
                    ),
                    fixed_fee=D("49.00"),
                    trial_days=14,
                ),
            ),
            DemoTier(
                "Scale",
                "Graduated prices for high volumes: $149 a month with the first "
                "100,000 calls at $0.002.",
                services.TierLimits(rate_limit=250, rate_unit=RateUnit.SECOND),
                _price(
                    "usd",
                    _meter_price(
                        "requests",
                        M.GRADUATED,
                        bands=(
                            Band(100_000, D("0.002"), D("149")),
                            Band(1_000_000, D("0.0012")),
                            Band(None, D("0.0008")),
                        ),
                    ),
                ),
            ),
            DemoTier(
                "Per check",
                "€0.0035 per fraud check, billed monthly.",
                services.TierLimits(rate_limit=50, rate_unit=RateUnit.SECOND),
                _price(
                    "eur", _meter_price("requests", M.PER_UNIT, unit_price=D("0.0035"))
                ),
            ),
            DemoTier(
                "Volume checks",
                "Monthly volume pricing in euros: every check costs the price of "
                "the band your month ends in.",
                services.TierLimits(rate_limit=100, rate_unit=RateUnit.SECOND),
                _price(
                    "eur",
                    _meter_price(
                        "requests",
                        M.VOLUME,
                        bands=(
                            Band(25_000, D("0.004")),
                            Band(250_000, D("0.003"), D("10")),
                            Band(None, D("0.002"), D("50")),
                        ),
                    ),
                ),
            ),
            DemoTier(
                "FX weekly",
                "¥3,000 a week for up to 25,000 calls a week.",
                services.TierLimits(
                    quota_limit=25_000,
                    quota_unit=QuotaUnit.PERIOD,
                    stop_on_quota_reach=True,
                    rate_limit=20,
                    rate_unit=RateUnit.SECOND,
                ),
                _price("jpy", fixed_fee=D("3000"), cycle=BillingCycle.WEEK),
            ),
            DemoTier(
                "FX metered",
                "The first 10,000 calls of a month free, then ¥0.5 and, above "
                "100,000, ¥0.2 a call; 60,000 credits included, then ¥3 per 100.",
                services.TierLimits(rate_limit=100, rate_unit=RateUnit.SECOND),
                _price(
                    "jpy",
                    _meter_price(
                        "requests",
                        M.GRADUATED,
                        bands=(
                            Band(10_000, D("0")),
                            Band(100_000, D("0.5")),
                            Band(None, D("0.2")),
                        ),
                    ),
                    _meter_price(
                        "credits",
                        M.FLAT_PLUS_OVERAGE,
                        included_requests=60_000,
                        overage_price=D("3"),
                        overage_block_size=100,
                    ),
                ),
            ),
        ),
        apis=(
            DemoApi(
                name="Payments API",
                context="payments",
                backend_path="/payments",
                description="Card payments in eight currencies, one JSON call each.",
                documentation=PAYMENTS_DOCS,
                tags=("payments",),
                openapi=PAYMENTS_OPENAPI,
                tiers=("Sandbox", "Launch", "Scale"),
            ),
            DemoApi(
                name="Fraud score API",
                context="fraud",
                backend_path="/fraud",
                description="A risk score and a decision for a payment.",
                documentation=FRAUD_DOCS,
                tags=("payments", "fraud"),
                openapi=FRAUD_OPENAPI,
                tiers=("Sandbox", "Per check", "Volume checks"),
            ),
            DemoApi(
                name="FX rates API",
                context="fx",
                backend_path="/fx",
                description="Daily exchange rates and conversions.",
                documentation=FX_DOCS,
                tags=("payments", "fx"),
                openapi=FX_OPENAPI,
                tiers=("Sandbox", "FX weekly", "FX metered"),
                meters=(
                    DemoMeter(
                        "credits",
                        "Credits",
                        "credit",
                        MeterSource.OPERATIONS,
                        operations="GET /convert 3\nGET /latest 1",
                    ),
                ),
            ),
        ),
    ),
}


def seed_catalog(org: Organization, actor: User) -> tuple[list[Tier], list[Api]]:
    """The organization's demo tiers and published APIs (made once)."""
    catalog = CATALOGS[org.slug]
    tiers = {}
    for spec in catalog.tiers:
        tier = Tier.objects.filter(organization=org, name=spec.name).first()
        if tier is None:
            tier = services.tier_create(
                organization=org,
                actor=actor,
                name=spec.name,
                description=spec.description,
                limits=spec.limits,
                price=spec.price,
            )
        tiers[spec.name] = tier
    apis = [
        _api(org, actor, spec, tiers=[tiers[name] for name in spec.tiers])
        for spec in catalog.apis
    ]
    return list(tiers.values()), apis


def _api(org: Organization, actor: User, spec: DemoApi, *, tiers) -> Api:
    api = Api.objects.filter(
        organization=org, context=spec.context, version="v1"
    ).first()
    if api is not None:
        return api
    api = services.api_create(
        organization=org,
        actor=actor,
        name=spec.name,
        version="v1",
        context=spec.context,
        backend_url=settings.SAMPLE_API_URL + spec.backend_path,
        description=spec.description,
        documentation=spec.documentation,
        tags=spec.tags,
        openapi_spec=parse_openapi(json.dumps(spec.openapi), f"{spec.context}.json"),
        openapi_filename=f"{spec.context}-openapi.json",
    )
    for meter in spec.meters:
        meters.meter_create(
            api=api,
            actor=actor,
            key=meter.key,
            display_name=meter.display_name,
            unit_label=meter.unit_label,
            display_scale=meter.display_scale,
            source=meter.source,
            operations_list=operations.parse(meter.operations),
        )
    services.api_set_tiers(api=api, tiers=tiers, actor=actor)
    services.api_transition(api=api, action=LifecycleAction.PUBLISH, actor=actor)
    assert api.state == ApiState.PUBLISHED
    return api
