"""HTML for the emulator's pages: one small layout, inline CSS, no external assets."""

from __future__ import annotations

import base64
import hashlib
from html import escape

CSS = """
* { box-sizing: border-box }
body { margin: 0; color: #1a1f36; background: #f6f8fa;
  font: 15px/1.5 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif }
.banner { background: #ffd04b; color: #3d2e00; text-align: center; padding: 6px 12px;
  font-size: 13px; font-weight: 600 }
.wrap { max-width: 560px; margin: 32px auto; padding: 0 16px }
.wide { max-width: 1040px }
.card { background: #fff; border: 1px solid #e3e8ee; border-radius: 8px;
  padding: 24px; margin-bottom: 16px; box-shadow: 0 1px 3px rgba(0, 0, 0, .04) }
h1 { font-size: 22px; margin: 0 0 4px }
h2 { font-size: 16px; margin: 20px 0 8px }
.card > h2:first-child { margin-top: 0 }
.muted { color: #697386; font-size: 13px }
label { display: block; font-size: 13px; font-weight: 600; margin: 12px 0 4px }
input[type=text], input[type=email], input[type=url], select { width: 100%;
  padding: 9px 10px; border: 1px solid #cfd7df; border-radius: 6px; font: inherit;
  background: #fff }
input:focus, select:focus { outline: 2px solid #635bff; border-color: #635bff }
.row { display: flex; gap: 12px }
.row > div { flex: 1 }
button { margin-top: 20px; width: 100%; padding: 11px; border: 0; border-radius: 6px;
  background: #635bff; color: #fff; font: inherit; font-weight: 600; cursor: pointer }
button.small { width: auto; margin: 0; padding: 6px 10px; font-size: 13px }
button:hover { background: #5046e4 }
a { color: #635bff }
.error, .ok { border-radius: 6px; padding: 10px 12px; margin: 12px 0 }
.error { background: #fdecee; color: #a41c2c; border: 1px solid #f5c2c9 }
.ok { background: #e6f6ee; color: #0e6245; border: 1px solid #b7e4cc }
.choice { border: 1px solid #e3e8ee; border-radius: 6px; padding: 10px 12px;
  margin: 8px 0; display: flex; gap: 10px; align-items: flex-start }
.choice input { margin-top: 4px }
table { width: 100%; border-collapse: collapse; font-size: 14px }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #eef1f4;
  vertical-align: top }
th { color: #697386; font-weight: 600; font-size: 12px; text-transform: uppercase }
td.num, th.num { text-align: right }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  font-weight: 600; background: #e3e8ee }
.badge.paid, .badge.complete, .badge.succeeded { background: #d7f7c2; color: #05690d }
.badge.open, .badge.pending { background: #cff5f6; color: #0055bc }
.badge.void, .badge.uncollectible, .badge.failed, .badge.expired { background: #ffe7f2;
  color: #b3093c }
.hint { font-size: 12px; color: #697386; margin-top: 16px }
.hint code { background: #f1f3f5; padding: 1px 4px; border-radius: 3px }
.actions { display: flex; gap: 8px; flex-wrap: wrap }
.center { text-align: center; margin-top: 16px }
.back { margin: 0 0 12px }
"""

# The pages' Content-Security-Policy: no script at all, the one inline stylesheet
# by its hash, images only inline. No form-action: the forms lead back to the
# return URL apimon gave, on its own origin.
_CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; img-src data:; "
    "frame-ancestors 'none'; base-uri 'none'"
)

BANNER = "Stripe emulator — test mode, no real money moves"


def page(title: str, body: str, *, wide: bool = False) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} · Stripe "
        f"emulator</title><style>{CSS}</style></head><body>"
        f"<div class=banner role=note>{BANNER}</div>"
        f'<main class="wrap{" wide" if wide else ""}">{body}</main></body></html>'
    )


def error_box(message: str | None) -> str:
    return f"<div class=error role=alert>{escape(message)}</div>" if message else ""


def badge(status: str) -> str:
    return f'<span class="badge {escape(status)}">{escape(status)}</span>'


def options(choices: list[tuple[str, str]], selected: str | None) -> str:
    return "".join(
        f'<option value="{escape(value)}"{" selected" if value == selected else ""}>'
        f"{escape(label)}</option>"
        for value, label in choices
    )


TEST_CARD_HINT = (
    "<p class=hint>Test cards: <code>4242 4242 4242 4242</code> succeeds · "
    "<code>4000 0000 0000 0002</code> is declined · <code>4000 0000 0000 0341</code> "
    "saves, "
    "then every charge fails · <code>4000 0000 0000 9995</code> saves, then charges "
    "fail "
    "with insufficient funds. Any future expiry date and any CVC.</p>"
)


def card_fields(values: dict[str, str]) -> str:
    def value(name: str) -> str:
        return escape(values.get(name, ""))

    return (
        "<label for=cardnumber>Card number</label>"
        "<input type=text id=cardnumber name=cardnumber inputmode=numeric "
        "autocomplete=cc-number "
        f'placeholder="1234 1234 1234 1234" value="{value("cardnumber")}" required>'
        "<div class=row><div><label for=exp-date>Expiration</label>"
        "<input type=text id=exp-date name=exp-date autocomplete=cc-exp "
        f'placeholder="MM / YY" '
        f'value="{value("exp-date")}" required></div>'
        "<div><label for=cvc>CVC</label>"
        "<input type=text id=cvc name=cvc inputmode=numeric autocomplete=cc-csc "
        "placeholder=CVC "
        f'value="{value("cvc")}" required></div></div>'
        "<label for=name>Cardholder name</label>"
        "<input type=text id=name name=name autocomplete=cc-name "
        f'placeholder="Full name on card" '
        f'value="{value("name")}">'
    )


def table(
    headers: list[str], rows: list[list[str]], *, numeric: set[int] = frozenset()
) -> str:
    """A table from already-escaped cells; `numeric` columns align right."""

    def cell(tag: str, index: int, text: str) -> str:
        return (
            f"<{tag} class=num>{text}</{tag}>"
            if index in numeric
            else f"<{tag}>{text}</{tag}>"
        )

    head = "".join(cell("th", i, escape(h)) for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(cell("td", i, text) for i, text in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"
