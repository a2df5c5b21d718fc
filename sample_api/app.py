"""Routes of the sample API. Answers are made up but stable: the same city gives the
same weather for the same hour (the same currency the same rates for the same day,
the same payment the same fraud score), so a demo looks real and tests can compare.

Acme's demo APIs use `/weather`, `/air` and `/quotes`; Globex's `/payments`,
`/fraud` and `/fx`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

from aiohttp import web

QUOTES = [
    ("Simplicity is prerequisite for reliability.", "Edsger W. Dijkstra"),
    ("Premature optimization is the root of all evil.", "Donald Knuth"),
    ("Make it work, make it right, make it fast.", "Kent Beck"),
    ("Programs must be written for people to read.", "Harold Abelson"),
    ("The best way to predict the future is to invent it.", "Alan Kay"),
    ("Talk is cheap. Show me the code.", "Linus Torvalds"),
    ("Weeks of coding can save you hours of planning.", "Unknown"),
    ("Any sufficiently advanced technology is indistinguishable from magic.", "Arthur C. Clarke"),
    ("There are only two hard things in computer science: cache invalidation and naming things.", "Phil Karlton"),
    ("It always takes longer than you expect, even when you take into account Hofstadter's Law.", "Douglas Hofstadter"),
    ("Walking on water and developing software from a specification are easy if both are frozen.", "Edward V. Berard"),
    ("First, solve the problem. Then, write the code.", "John Johnson"),
]  # fmt: skip
CONDITIONS = ["sunny", "partly cloudy", "cloudy", "light rain", "showers", "windy", "fog", "snow"]  # fmt: skip
MAX_BYTES = 256 * 1024 * 1024
# The served-requests counter (`--count-served`, off by default): requests carrying
# this header are counted per (tag, status), for the fault tests' ground truth.
COUNT_TAG_HEADER = "X-Count-Tag"
MAX_COUNT_TAGS = 10_000
SERVED = web.AppKey("served", Counter)


def _rng(*parts: object) -> random.Random:
    seed = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))  # noqa: S311 - made-up weather


def _city(request: web.Request) -> str:
    city = request.query.get("city", "").strip()
    if not city:
        raise web.HTTPBadRequest(
            text='{"error": {"code": "city_required", "message": "Pass ?city=…"}}',
            content_type="application/json",
        )
    return city[:80]


def _weather(city: str, at: datetime) -> dict:
    rng = _rng(city.lower(), at.strftime("%Y%m%d%H"))
    base = _rng(city.lower()).uniform(-5, 28)
    return {
        "temperature_c": round(base + rng.uniform(-6, 6), 1),
        "condition": rng.choice(CONDITIONS),
        "humidity_percent": rng.randint(25, 98),
        "wind_kph": round(rng.uniform(0, 45), 1),
    }


async def index(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "name": "apimon sample API",
            "endpoints": [
                "/weather/current?city=Lisbon",
                "/weather/forecast?city=Lisbon&days=3",
                "/quotes/random",
                "/quotes/{id}",
                "/air/current?city=Lisbon",
                "/fx/latest?base=EUR",
                "/fx/convert?from=USD&to=JPY&amount=100",
                "/fraud/score?amount=120.50&country=DE",
                "POST /payments/charges",
                "/payments/charges/{id}",
            ],
        }
    )


async def weather_current(request: web.Request) -> web.Response:
    city = _city(request)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return web.json_response(
        {"city": city, "observed_at": now.isoformat(), **_weather(city, now)}
    )


async def weather_forecast(request: web.Request) -> web.Response:
    city = _city(request)
    try:
        days = int(request.query.get("days", "3"))
    except ValueError:
        days = 0
    if not 1 <= days <= 14:
        raise web.HTTPBadRequest(
            text='{"error": {"code": "bad_days", "message": "days must be 1 to 14"}}',
            content_type="application/json",
        )
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    forecast = []
    for n in range(days):
        day = today + timedelta(days=n)
        w = _weather(city, day)
        forecast.append(
            {
                "date": day.date().isoformat(),
                "high_c": round(w["temperature_c"] + 3, 1),
                "low_c": round(w["temperature_c"] - 5, 1),
                "condition": w["condition"],
                "chance_of_rain_percent": _rng(city, day.date()).randint(0, 100),
            }
        )
    return web.json_response({"city": city, "days": forecast})


AQI_CATEGORIES = [
    (50, "good"),
    (100, "moderate"),
    (150, "unhealthy for sensitive groups"),
    (200, "unhealthy"),
    (300, "very unhealthy"),
    (500, "hazardous"),
]


async def air_current(request: web.Request) -> web.Response:
    city = _city(request)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rng = _rng("air", city.lower(), now.strftime("%Y%m%d%H"))
    aqi = rng.randint(12, 180)
    category = next(name for limit, name in AQI_CATEGORIES if aqi <= limit)
    return web.json_response(
        {
            "city": city,
            "observed_at": now.isoformat(),
            "aqi": aqi,
            "category": category,
            "pm25_ugm3": round(aqi * rng.uniform(0.2, 0.35), 1),
            "pm10_ugm3": round(aqi * rng.uniform(0.35, 0.6), 1),
            "no2_ugm3": round(rng.uniform(5, 60), 1),
        }
    )


def _bad_request(code: str, message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=json.dumps({"error": {"code": code, "message": message}}),
        content_type="application/json",
    )


# Units of each currency per US dollar, around which the made-up rates move.
FX_BASE = {
    "USD": 1.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "JPY": 151.0,
    "CHF": 0.88,
    "CAD": 1.36,
    "AUD": 1.52,
    "SEK": 10.6,
}


def _currency(request: web.Request, name: str, default: str) -> str:
    code = request.query.get(name, default).strip().upper()
    if code not in FX_BASE:
        raise _bad_request(
            "unknown_currency", f"{name} must be one of {', '.join(sorted(FX_BASE))}"
        )
    return code


def _rates(base: str, day: str) -> dict[str, float]:
    per_usd = {
        code: value * (1 + _rng("fx", code, day).uniform(-0.01, 0.01))
        for code, value in FX_BASE.items()
    }
    per_usd["USD"] = 1.0
    return {
        code: round(value / per_usd[base], 6)
        for code, value in per_usd.items()
        if code != base
    }


async def fx_latest(request: web.Request) -> web.Response:
    base = _currency(request, "base", "USD")
    day = datetime.now(UTC).date().isoformat()
    return web.json_response({"base": base, "date": day, "rates": _rates(base, day)})


async def fx_convert(request: web.Request) -> web.Response:
    source = _currency(request, "from", "USD")
    target = _currency(request, "to", "EUR")
    amount = _amount(request, default="1", most=1e12)
    day = datetime.now(UTC).date().isoformat()
    rate = 1.0 if source == target else _rates(source, day)[target]
    return web.json_response(
        {
            "from": source,
            "to": target,
            "date": day,
            "rate": rate,
            "amount": amount,
            "result": round(amount * rate, 2),
        }
    )


def _amount(request: web.Request, *, default: str, most: float) -> float:
    try:
        amount = float(request.query.get("amount", default))
    except ValueError:
        amount = -1.0
    if not 0 <= amount <= most:
        raise _bad_request("bad_amount", f"Pass ?amount= (a number from 0 to {most:g})")
    return amount


async def fraud_score(request: web.Request) -> web.Response:
    amount = _amount(request, default="", most=1e9)
    country = request.query.get("country", "US").strip().upper()[:2]
    email = request.query.get("email", "").strip().lower()[:200]
    rng = _rng("fraud", f"{amount:.2f}", country, email)
    score = min(99, int(rng.uniform(0, 40) + min(amount / 50, 40)))
    reasons = []
    if amount > 1000:
        reasons.append("large_amount")
    if email.endswith((".test", ".invalid")):
        reasons.append("disposable_email")
        score = min(99, score + 30)
    decision = "approve" if score < 50 else "review" if score < 80 else "decline"
    return web.json_response(
        {"score": score, "decision": decision, "reasons": reasons, "country": country}
    )


async def payment_create(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _bad_request("bad_body", "Send a JSON object: {amount, currency}")
    amount, currency = body.get("amount"), str(body.get("currency", "")).upper()
    if not isinstance(amount, int) or amount <= 0 or currency not in FX_BASE:
        raise _bad_request(
            "bad_payment",
            "amount must be a positive integer (minor units) and currency one of "
            + ", ".join(sorted(FX_BASE)),
        )
    digest = hashlib.sha256(f"{amount}|{currency}|{body.get('reference')}".encode())
    payment_id = "ch_" + digest.hexdigest()[:16]
    return web.json_response(_payment(payment_id, amount, currency), status=201)


# ---- text generation (an LLM-like API sold by the token) ---------------------------

MAX_COMPLETION_TOKENS = 4096


async def text_complete(request: web.Request) -> web.Response:
    """`POST /text/v1/complete` with ``{"prompt": "...", "max_tokens": n}``: a
    made-up completion, and the tokens it consumed (prompt + completion words) in
    the `Apimon-Meter-tokens` header, which a metering gateway counts and strips."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
        raise _bad_request(
            "bad_body", 'Send a JSON object: {"prompt": "...", "max_tokens": 64}'
        )
    max_tokens = body.get("max_tokens", 64)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise _bad_request("bad_max_tokens", "max_tokens is a whole number")
    if not 1 <= max_tokens <= MAX_COMPLETION_TOKENS:
        raise _bad_request(
            "bad_max_tokens", f"max_tokens is between 1 and {MAX_COMPLETION_TOKENS}"
        )
    prompt_tokens = len(body["prompt"].split())
    rng = _rng("complete", body["prompt"], max_tokens)
    vocabulary = [word for text, _author in QUOTES for word in text.split()]
    words = [rng.choice(vocabulary) for _ in range(max_tokens)]
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words)}
    response = web.json_response({"text": " ".join(words), "usage": usage})
    response.headers["Apimon-Meter-tokens"] = str(prompt_tokens + len(words))
    return response


def _payment(payment_id: str, amount: int, currency: str) -> dict:
    declined = _rng("payment", payment_id).random() < 0.05
    return {
        "id": payment_id,
        "amount": amount,
        "currency": currency,
        "status": "declined" if declined else "succeeded",
    }


async def payment_detail(request: web.Request) -> web.Response:
    payment_id = request.match_info["id"]
    if not payment_id.startswith("ch_") or len(payment_id) > 40:
        return web.json_response(
            {"error": {"code": "not_found", "message": "No such charge."}}, status=404
        )
    rng = _rng("amount", payment_id)
    return web.json_response(
        _payment(payment_id, rng.randint(100, 50_000), rng.choice(["USD", "EUR"]))
    )


def _quote(index: int) -> dict:
    text, author = QUOTES[index]
    return {"id": index + 1, "text": text, "author": author}


async def quote_random(request: web.Request) -> web.Response:
    return web.json_response(_quote(random.randrange(len(QUOTES))))  # noqa: S311


async def quote_by_id(request: web.Request) -> web.Response:
    try:
        index = int(request.match_info["id"]) - 1
    except ValueError:
        index = -1
    if not 0 <= index < len(QUOTES):
        return web.json_response(
            {"error": {"code": "not_found", "message": "No such quote."}}, status=404
        )
    return web.json_response(_quote(index))


# ---- for tests and benchmarks ---------------------------------------------------


async def bench_fast(request: web.Request) -> web.Response:
    return web.Response(body=b'{"ok":true}', content_type="application/json")


async def bench_slow(request: web.Request) -> web.Response:
    ms = min(max(int(request.query.get("ms", "200")), 0), 120_000)
    await asyncio.sleep(ms / 1000)
    return web.Response(body=b'{"ok":true}', content_type="application/json")


async def bench_status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    if not 200 <= code <= 599:
        code = 400
    body = b"" if code in (204, 304) else b'{"status":%d}' % code
    headers = {"Location": "/_bench/fast"} if 300 <= code < 400 else None
    return web.Response(
        status=code, body=body or None, headers=headers, content_type="application/json"
    )


async def bench_bytes(request: web.Request) -> web.StreamResponse:
    """n bytes, streamed in 64 KiB chunks without Content-Length (chunked), with an
    optional pause between chunks (pause_ms) to show that the gateway streams."""
    n = min(int(request.query.get("n", "1048576")), MAX_BYTES)
    pause = min(int(request.query.get("pause_ms", "0")), 10_000) / 1000
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await response.prepare(request)
    chunk = b"x" * 65536
    while n > 0:
        await response.write(chunk[: min(n, len(chunk))])
        n -= len(chunk)
        if pause and n > 0:
            await asyncio.sleep(pause)
    await response.write_eof()
    return response


async def bench_echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "raw_path": request.raw_path,
            "query": request.query_string,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body": body.decode("utf-8", "replace"),
            "body_length": len(body),
        }
    )


async def bench_headers(request: web.Request) -> web.Response:
    """An answer with one header per query parameter (``?Set-Cookie=a%3D1`` sets a
    cookie), for the gateway's tests of what it passes back."""
    response = web.Response(body=b'{"ok":true}', content_type="application/json")
    for name, value in request.query.items():
        response.headers.add(name, value)
    return response


# ---- the served-requests counter (fault tests) ------------------------------------


@web.middleware
async def served_counter(request: web.Request, handler):
    """Count what this backend answered, per X-Count-Tag and status: what a metering
    gateway in front of it should have counted. Untagged requests are not counted,
    and at most MAX_COUNT_TAGS tags are kept, so the counter stays small."""
    tag = request.headers.get(COUNT_TAG_HEADER)
    if tag is None or request.path.startswith("/_served"):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        status = exc.status
        raise
    else:
        status = response.status
        return response
    finally:
        served = request.app[SERVED]
        if (tag[:100], status) in served or len(served) < MAX_COUNT_TAGS:
            served[tag[:100], status] += 1


async def served_counts(request: web.Request) -> web.Response:
    """{tag: {status: requests answered}} since the start or the last reset."""
    counts: dict[str, dict[str, int]] = {}
    for (tag, status), n in request.app[SERVED].items():
        counts.setdefault(tag, {})[str(status)] = n
    return web.json_response(counts)


async def served_reset(request: web.Request) -> web.Response:
    request.app[SERVED].clear()
    return web.json_response({})


def create_app(*, count_served: bool = False) -> web.Application:
    """The sample API. `count_served` adds the served-requests counter
    (`GET /_served`, `POST /_served/reset`) that the fault tests read; the demo runs
    without it."""
    app = web.Application(
        client_max_size=MAX_BYTES, middlewares=[served_counter] if count_served else []
    )
    app[SERVED] = Counter()
    if count_served:
        app.add_routes(
            [
                web.get("/_served", served_counts),
                web.post("/_served/reset", served_reset),
            ]
        )
    app.add_routes(
        [
            web.get("/", index),
            web.get("/weather/current", weather_current),
            web.get("/weather/forecast", weather_forecast),
            web.get("/quotes/random", quote_random),
            web.get("/quotes/{id}", quote_by_id),
            web.get("/air/current", air_current),
            web.get("/fx/latest", fx_latest),
            web.get("/fx/convert", fx_convert),
            web.get("/fraud/score", fraud_score),
            web.post("/payments/charges", payment_create),
            web.post("/text/v1/complete", text_complete),
            web.get("/payments/charges/{id}", payment_detail),
            web.get("/_bench/fast", bench_fast),
            web.get("/_bench/slow", bench_slow),
            web.route("*", "/_bench/status/{code:\\d+}", bench_status),
            web.get("/_bench/bytes", bench_bytes),
            web.get("/_bench/headers", bench_headers),
            web.route("*", "/_bench/echo", bench_echo),
            web.route("*", "/_bench/echo/{tail:.*}", bench_echo),
        ]
    )
    return app
