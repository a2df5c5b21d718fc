"""The pages Stripe would show a person: Connect OAuth, account onboarding, Checkout,
the hosted invoice page, its PDF, receipts — plus the emulator's dashboard and its
`/_emulator/` control endpoints."""

from __future__ import annotations

import datetime
import json
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from stripe_emulator import objects
from stripe_emulator.cards import brand_label
from stripe_emulator.money import format_amount
from stripe_emulator.pdf import text_pdf
from stripe_emulator.templates import (
    CONTENT_SECURITY_POLICY,
    TEST_CARD_HINT,
    badge,
    card_fields,
    error_box,
    options,
    page,
    table,
)

if TYPE_CHECKING:
    from stripe_emulator.emulator import Ctx, Emulator


def _html(body: str, status: int = 200) -> Response:
    response = Response(body, status=status, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, indent=2), status=status, content_type="application/json"
    )


def _date(timestamp: int | None) -> str:
    if not timestamp:
        return "—"
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC).strftime(
        "%Y-%m-%d %H:%M UTC"
    )


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = (parts.query + "&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


COUNTRY_CHOICES = [
    (
        code,
        f"{code} — {name}"
        + (
            " (not supported for payouts)"
            if code in objects.UNSUPPORTED_COUNTRIES
            else ""
        ),
    )
    for code, (name, _currency) in objects.COUNTRIES.items()
]


class Pages:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.map = Map(
            [
                Rule("/", endpoint="dashboard", methods=["GET"]),
                Rule("/oauth/authorize", endpoint="authorize", methods=["GET", "POST"]),
                Rule("/oauth/authorize/deny", endpoint="deny", methods=["GET"]),
                Rule(
                    "/setup/s/<account>/<token>",
                    endpoint="onboarding",
                    methods=["GET", "POST"],
                ),
                Rule("/c/pay/<session>", endpoint="checkout", methods=["GET", "POST"]),
                Rule(
                    "/i/<account>/<token>",
                    endpoint="hosted_invoice",
                    methods=["GET", "POST"],
                ),
                Rule(
                    "/invoice/<account>/<token>/pdf",
                    endpoint="invoice_pdf",
                    methods=["GET"],
                ),
                Rule(
                    "/receipts/payment/<account>/<charge>",
                    endpoint="receipt",
                    methods=["GET"],
                ),
                Rule("/_emulator/", endpoint="control_state", methods=["GET"]),
                Rule(
                    "/_emulator/advance", endpoint="control_advance", methods=["POST"]
                ),
                Rule(
                    "/_emulator/run_due", endpoint="control_run_due", methods=["POST"]
                ),
                Rule(
                    "/_emulator/deliver", endpoint="control_deliver", methods=["POST"]
                ),
                Rule(
                    "/_emulator/deliveries",
                    endpoint="control_deliveries",
                    methods=["GET"],
                ),
                Rule("/_emulator/reset", endpoint="control_reset", methods=["POST"]),
                Rule(
                    "/_emulator/faults",
                    endpoint="control_faults",
                    methods=["GET", "POST"],
                ),
            ],
            strict_slashes=False,
        )

    def dispatch(self, request: Request) -> Response:
        adapter = self.map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except HTTPException as exc:
            if request.path.startswith("/_emulator/"):
                return _json({"error": "not found"}, 404)
            return _html(
                page(
                    "Not found",
                    "<div class=card><h1>Not found</h1>"
                    f"<p class=muted>{escape(request.path)}</p></div>",
                ),
                exc.code or 404,
            )
        return getattr(self, endpoint)(request, **args)

    def _ctx(self, request: Request, account: str | None = None) -> Ctx:
        base = self.emulator.config.public_url or request.host_url.rstrip("/")
        return self.emulator.context(account, base_url=base)

    # --- Connect OAuth ----------------------------------------------------------------

    def authorize(self, request: Request) -> Response:
        from stripe_emulator.api.accounts import connect, create_account, issue_code

        args = request.args
        config = self.emulator.config
        client_id = args.get("client_id", "")
        redirect_uri = args.get("redirect_uri", "")
        state = args.get("state")
        if client_id != config.client_id:
            return _html(
                page(
                    "Authorization error",
                    "<div class=card><h1>Something went wrong</h1>"
                    + error_box(
                        f"No application matches the supplied client identifier "
                        f"({client_id or 'none'})."
                    )
                    + "</div>",
                ),
                400,
            )
        if not redirect_uri.startswith(("http://", "https://")):
            return _html(
                page(
                    "Authorization error",
                    "<div class=card><h1>Something went wrong</h1>"
                    + error_box("The emulator needs a redirect_uri (http or https).")
                    + "</div>",
                ),
                400,
            )

        def back(params: dict[str, str]) -> Response:
            if state is not None:
                params["state"] = state
            return redirect(_with_query(redirect_uri, params), 302)

        if args.get("response_type", "code") != "code":
            return back(
                {
                    "error": "unsupported_response_type",
                    "error_description": "Only response_type=code is supported.",
                }
            )
        scope = args.get("scope", "read_only")
        if scope not in ("read_only", "read_write"):
            return back(
                {
                    "error": "invalid_scope",
                    "error_description": f"Invalid scope: {scope}",
                }
            )
        ctx = self._ctx(request)
        # A closed emulator is reached by strangers' browsers: it does not list the
        # other tenants' accounts; an existing one is "signed in to" by its id, which
        # only its owner knows (docs/stripe-emulator.md "Closed mode").
        closed = config.closed
        existing = (
            []
            if closed
            else [
                acct
                for acct in ctx.store.list("account", account=ctx.platform_id)
                if not acct.get("_platform")
            ]
        )
        form = request.form if request.method == "POST" else {}
        values = {
            "email": form.get("email", args.get("stripe_user[email]", "")),
            "business_name": form.get(
                "business_name", args.get("stripe_user[business_name]", "")
            ),
            "country": form.get("country", args.get("stripe_user[country]", "US")),
            "choice": form.get("choice", "new"),
            "account_id": form.get("account_id", "").strip(),
        }
        error = None
        if request.method == "POST":
            choice = values["choice"]
            if closed and choice == "existing":
                choice = values["account_id"]
            with ctx.store.atomic():
                if choice == "new":
                    if "@" not in values["email"]:
                        error = "Enter the email address of the new account."
                    elif not values["business_name"].strip():
                        error = "Enter the business name of the new account."
                    elif values["country"] not in objects.COUNTRIES:
                        error = "Pick a country."
                    else:
                        acct = create_account(
                            ctx,
                            email=values["email"].strip(),
                            business_name=values["business_name"].strip(),
                            country=values["country"],
                            onboarded=True,
                            ip=request.remote_addr,
                            url=args.get("stripe_user[url]") or None,
                        )
                else:
                    found = ctx.store.get(choice, account=ctx.platform_id)
                    if (
                        found is None
                        or found.get("object") != "account"
                        or found.get("_platform")
                    ):
                        error = (
                            "No account has this id."
                            if closed
                            else "Pick one of the accounts listed."
                        )
                    else:
                        acct = found
                if error is None:
                    connect(ctx, acct)
                    code = issue_code(ctx, acct["id"], scope)
                    return back({"scope": scope, "code": code})
        accounts_html = "".join(
            self._account_choice(acct, values["choice"]) for acct in existing
        )
        deny = "/oauth/authorize/deny?" + urlencode(list(args.items(multi=True)))
        body = (
            "<div class=card>"
            f"<h1>Connect to {escape(config.platform_name)}</h1>"
            f"<p class=muted>{escape(config.platform_name)} would like to access and "
            "manage your "
            "Stripe account "
            f"({'read and write' if scope == 'read_write' else 'read only'}).</p>"
            + error_box(error)
            + f'<form method=post action="{escape(request.full_path)}">'
            "<label class=choice><input type=radio name=choice value=new"
            f"{' checked' if values['choice'] == 'new' else ''}>"
            "<span><strong>Create a new Stripe account</strong></span></label>"
            "<label for=email>Email</label>"
            f'<input type=email id=email name=email value="{escape(values["email"])}" '
            'placeholder="you@example.com">'
            "<label for=business_name>Business name</label>"
            f"<input type=text id=business_name name=business_name "
            f'value="{escape(values["business_name"])}">'
            "<label for=country>Country</label>"
            "<select id=country "
            f"name=country>{options(COUNTRY_CHOICES, values['country'])}</select>"
            + (
                f"<h2>Or sign in to an existing account</h2>{accounts_html}"
                if existing
                else ""
            )
            + (self._account_by_id(values) if closed else "")
            + "<button type=submit>Authorize access to this account</button></form>"
            f'<p class="muted center"><a href="{escape(deny)}">Deny</a>'
            " — go back without connecting</p></div>"
        )
        return _html(page("Connect with Stripe", body))

    @staticmethod
    def _account_choice(acct: dict[str, Any], chosen: str) -> str:
        checked = " checked" if chosen == acct["id"] else ""
        name = acct["business_profile"]["name"] or acct["id"]
        details = f"{acct['email'] or ''} · {acct['id']} · {acct['country']}"
        return (
            "<label class=choice><input type=radio name=choice "
            f'value="{escape(acct["id"])}"{checked}>'
            f"<span><strong>{escape(name)}</strong><br>"
            f"<span class=muted>{escape(details)}</span></span></label>"
        )

    @staticmethod
    def _account_by_id(values: dict[str, str]) -> str:
        checked = " checked" if values["choice"] == "existing" else ""
        return (
            "<h2>Or sign in to an existing account</h2>"
            f"<label class=choice><input type=radio name=choice value=existing{checked}>"
            "<span><strong>The account with this id</strong></span></label>"
            "<label for=account_id>Account id</label>"
            "<input type=text id=account_id name=account_id "
            f'value="{escape(values["account_id"])}" placeholder="acct_…">'
        )

    def deny(self, request: Request) -> Response:
        args = request.args
        if args.get("client_id") != self.emulator.config.client_id or not args.get(
            "redirect_uri"
        ):
            return _html(
                page(
                    "Authorization error",
                    "<div class=card>" + error_box("Unknown application.") + "</div>",
                ),
                400,
            )
        params = {
            "error": "access_denied",
            "error_description": "The user denied your request",
        }
        if args.get("state") is not None:
            params["state"] = args["state"]
        return redirect(_with_query(args["redirect_uri"], params), 302)

    # --- Account onboarding (account links) -------------------------------------------

    def onboarding(self, request: Request, account: str, token: str) -> Response:
        from stripe_emulator.api.accounts import update_account

        ctx = self._ctx(request)
        link = ctx.store.get(f"acctlink_{token}", account=ctx.platform_id)
        if link is None or link["account"] != account:
            return _html(
                page(
                    "Link not found",
                    "<div class=card><h1>This link is invalid</h1></div>",
                ),
                404,
            )
        if link["used"] or ctx.now() > link["expires_at"]:
            return redirect(link["refresh_url"], 302)
        acct = ctx.store.get(account, account=ctx.platform_id)
        assert acct is not None
        profile = acct["business_profile"]
        form = request.form if request.method == "POST" else {}
        values = {
            "business_name": form.get("business_name", profile["name"] or ""),
            "email": form.get("email", acct["email"] or ""),
            "url": form.get("url", profile["url"] or ""),
            "product_description": form.get(
                "product_description", profile["product_description"] or ""
            ),
        }
        error = None
        if request.method == "POST":
            if not values["business_name"].strip():
                error = "Enter your business name."
            else:

                def complete(obj: dict[str, Any]) -> None:
                    obj["email"] = values["email"].strip() or obj["email"]
                    obj["business_profile"]["name"] = values["business_name"].strip()
                    obj["business_profile"]["url"] = values["url"].strip() or None
                    obj["business_profile"]["product_description"] = (
                        values["product_description"].strip() or None
                    )
                    obj["settings"]["dashboard"]["display_name"] = values[
                        "business_name"
                    ].strip()
                    objects.complete_onboarding(
                        obj, now=ctx.now(), ip=request.remote_addr
                    )

                with ctx.store.atomic():
                    update_account(ctx, acct, complete)
                    link["used"] = True
                    ctx.store.save(link)
                return redirect(link["return_url"], 302)
        body = (
            "<div class=card><h1>Tell us about your business</h1>"
            f"<p class=muted>Account {escape(account)} · {escape(acct['country'])}</p>"
            + error_box(error)
            + f'<form method=post action="{escape(request.path)}">'
            "<label for=business_name>Business name</label>"
            "<input type=text id=business_name name=business_name "
            f'value="{escape(values["business_name"])}">'
            "<label for=email>Email</label>"
            f'<input type=email id=email name=email value="{escape(values["email"])}">'
            "<label for=url>Business website</label>"
            f'<input type=url id=url name=url value="{escape(values["url"])}" placeholder="https://">'
            "<label for=product_description>What do you sell?</label>"
            f"<input type=text id=product_description name=product_description "
            f'value="{escape(values["product_description"])}">'
            "<button type=submit>Agree and submit</button></form></div>"
        )
        return _html(page("Account onboarding", body))

    # --- Checkout ---------------------------------------------------------------------

    def checkout(self, request: Request, session: str) -> Response:
        from stripe_emulator.api.checkout import complete_session, success_redirect

        owner = self.emulator.store.owner(session)
        found = self.emulator.store.get(session)
        if owner is None or found is None or found.get("object") != "checkout.session":
            return _html(
                page(
                    "Not found",
                    "<div class=card><h1>Something went wrong</h1>"
                    "<p>This Checkout Session does not exist.</p></div>",
                ),
                404,
            )
        ctx = self._ctx(request, owner)
        if found["status"] == "complete":
            return _html(
                page(
                    "Card saved",
                    "<div class=card><h1>Your card has been saved</h1>"
                    f'<p><a href="{escape(success_redirect(found))}">Continue</a></p>'
                    "</div>",
                )
            )
        if found["status"] == "expired":
            back = (
                f'<p><a href="{escape(found["cancel_url"])}">Go back</a></p>'
                if found.get("cancel_url")
                else ""
            )
            return _html(
                page(
                    "Session expired",
                    "<div class=card><h1>This Checkout Session has "
                    f"expired</h1>{back}</div>",
                ),
                410,
            )
        error = None
        values: dict[str, str] = (
            dict(request.form.items()) if request.method == "POST" else {}
        )
        if request.method == "POST":
            with ctx.store.atomic():
                error = complete_session(ctx, found, values)
            if error is None:
                return redirect(success_redirect(found), 303)
        acct = ctx.store.get(owner) or {}
        merchant = (acct.get("business_profile") or {}).get("name") or owner
        customer = (
            ctx.store.get(found["customer"], account=owner)
            if found["customer"]
            else None
        )
        email = (
            values.get("email")
            or (customer or {}).get("email")
            or found.get("customer_email")
            or ""
        )
        cancel = (
            f'<p class="muted back"><a href="{escape(found["cancel_url"])}">'
            "← Back</a></p>"
            if found.get("cancel_url")
            else ""
        )
        # What the page says about money is what the merchant says (custom text):
        # Checkout in setup mode charges nothing itself, but it cannot know whether
        # the merchant charges the card at once (a plan paid in advance) or later.
        texts = found.get("custom_text") or {}

        def custom(slot: str, css: str) -> str:
            message = (texts.get(slot) or {}).get("message")
            return f"<p class={css}>{escape(message)}</p>" if message else ""

        body = (
            cancel + f"<div class=card><h1>{escape(merchant)}</h1>"
            f"<p class=muted>Save a card with {escape(merchant)} for future "
            "payments.</p>"
            + error_box(error)
            + f'<form method=post action="{escape(request.path)}">'
            "<label for=email>Email</label>"
            f'<input type=email id=email name=email value="{escape(email)}"'
            f"{' readonly' if customer and customer.get('email') else ''}>"
            + card_fields(values)
            + "<label for=country>Country or region</label>"
            "<select id=country "
            f"name=country>{options(COUNTRY_CHOICES, values.get('country', 'US'))}"
            "</select>"
            + custom("submit", "submit-text")
            + "<button type=submit>Save card</button></form>"
            + f"<p class='muted consent'>By saving your card, you allow "
            f"{escape(merchant)} to charge it for future payments in accordance "
            "with their terms.</p>"
            + custom("after_submit", "muted")
            + custom("terms_of_service_acceptance", "muted")
            + TEST_CARD_HINT
            + "</div>"
        )
        return _html(page("Save your card", body), 402 if error else 200)

    # --- Hosted invoice page, PDF, receipts -------------------------------------------

    def _invoice_by_token(self, account: str, token: str) -> dict[str, Any] | None:
        secret = token.removeprefix("test_")
        matches = self.emulator.store.list(
            "invoice", account=account, where=lambda inv: inv.get("_token") == secret
        )
        return matches[0] if matches else None

    def hosted_invoice(self, request: Request, account: str, token: str) -> Response:
        from stripe_emulator.api.checkout import card_from_form
        from stripe_emulator.api.customers import create_payment_method
        from stripe_emulator.api.invoices import attempt_payment, items_of

        invoice = self._invoice_by_token(account, token)
        if invoice is None:
            return _html(
                page("Not found", "<div class=card><h1>Invoice not found</h1></div>"),
                404,
            )
        ctx = self._ctx(request, account)
        error = None
        values: dict[str, str] = (
            dict(request.form.items()) if request.method == "POST" else {}
        )
        if request.method == "POST" and invoice["status"] in ("open", "uncollectible"):
            with ctx.store.atomic():
                card = card_from_form(ctx, values)
                if isinstance(card, str):
                    error = card
                else:
                    test_card, month, year = card
                    pm = create_payment_method(
                        ctx,
                        test_card,
                        exp_month=month,
                        exp_year=year,
                        name=values.get("name") or None,
                    )
                    pm["_consumed"] = True
                    ctx.store.save(pm)
                    failure = attempt_payment(ctx, invoice, pm)
                    error = failure.message if failure else None
            if error is None:
                return redirect(request.path, 303)
        acct = ctx.store.get(account) or {}
        merchant = (acct.get("business_profile") or {}).get("name") or account
        currency = invoice["currency"]

        def money(amount: int) -> str:
            return format_amount(amount, currency)

        rows = "".join(
            f"<tr><td>{escape(item['description'] or '')}</td>"
            f"<td class=num>{escape(item['quantity_decimal'])}</td>"
            f"<td class=num>{money(item['amount'])}</td></tr>"
            for item in items_of(self.emulator, invoice, account)
        )
        remaining = invoice["amount_remaining"]
        pay = ""
        if invoice["status"] in ("open", "uncollectible") and remaining > 0:
            pay = (
                f"<h2>Pay {money(remaining)}</h2>"
                + error_box(error)
                + f'<form method=post action="{escape(request.path)}">'
                + card_fields(values)
                + f"<button type=submit>Pay {money(remaining)}</button></form>"
                + TEST_CARD_HINT
            )
        elif invoice["status"] == "paid":
            paid_at = _date(invoice["status_transitions"]["paid_at"])
            pay = f"<div class=ok>Paid on {paid_at}</div>"
        billed_to = (
            invoice["customer_email"] or invoice["customer_name"] or invoice["customer"]
        )
        due = f" · due {_date(invoice['due_date'])}" if invoice["due_date"] else ""
        pdf = (
            f'<p><a href="{escape(invoice["invoice_pdf"])}">'
            "Download invoice (PDF)</a></p>"
            if invoice["invoice_pdf"]
            else ""
        )
        body = (
            f"<div class=card><p class=muted>{escape(merchant)}</p>"
            f"<h1>Invoice {escape(invoice['number'] or invoice['id'])} "
            f"{badge(invoice['status'])}</h1>"
            f"<p class=muted>Billed to {escape(billed_to)}"
            f" · issued {_date(invoice['effective_at'])}{due}</p>"
            "<table><tr><th>Description</th><th class=num>Qty</th>"
            "<th class=num>Amount</th></tr>"
            f"{rows}<tr><th colspan=2>Total</th>"
            f"<th class=num>{money(invoice['total'])}</th></tr>"
            + (
                "<tr><td colspan=2>Amount paid</td>"
                f"<td class=num>{money(invoice['amount_paid'])}</td></tr>"
                if invoice["amount_paid"]
                else ""
            )
            + "<tr><td colspan=2>Amount remaining</td>"
            f"<td class=num>{money(invoice['amount_remaining'])}</td></tr></table>"
            f"{pdf}{pay}</div>"
        )
        return _html(page(f"Invoice {invoice['number']}", body), 402 if error else 200)

    def invoice_pdf(self, request: Request, account: str, token: str) -> Response:
        from stripe_emulator.api.invoices import items_of

        invoice = self._invoice_by_token(account, token)
        if invoice is None:
            return Response("Not found", status=404)
        acct = self.emulator.store.get(account) or {}
        merchant = (acct.get("business_profile") or {}).get("name") or account
        currency = invoice["currency"]
        lines: list[tuple[str, int, bool]] = [
            (f"Invoice {invoice['number']}", 20, True),
            (merchant, 12, False),
            ("Stripe emulator - test mode, no real money moves", 9, False),
            (
                f"Billed to: {invoice['customer_name'] or ''} "
                f"{invoice['customer_email'] or ''}",
                11,
                False,
            ),
            (f"Date of issue: {_date(invoice['effective_at'])}", 11, False),
            (f"Status: {invoice['status']}", 11, False),
            ("", 11, False),
        ]
        for item in items_of(self.emulator, invoice, account):
            lines.append(
                (
                    f"{item['description'] or 'Item'}  x{item['quantity_decimal']}   "
                    f"{format_amount(item['amount'], currency)}",
                    11,
                    False,
                )
            )
        lines += [
            ("", 11, False),
            (f"Total: {format_amount(invoice['total'], currency)}", 12, True),
            (f"Amount due: {format_amount(invoice['amount_due'], currency)}", 12, True),
            (
                f"Amount paid: {format_amount(invoice['amount_paid'], currency)}",
                11,
                False,
            ),
        ]
        body = text_pdf(lines, title=f"Invoice {invoice['number']}")
        return Response(
            body,
            content_type="application/pdf",
            headers={
                "Content-Disposition": (
                    f'inline; filename="Invoice-{invoice["number"]}.pdf"'
                )
            },
        )

    def receipt(self, request: Request, account: str, charge: str) -> Response:
        found = self.emulator.store.get(charge, account=account)
        if found is None or found.get("object") != "charge":
            return _html(
                page("Not found", "<div class=card><h1>Receipt not found</h1></div>"),
                404,
            )
        card = found["payment_method_details"]["card"]
        body = (
            f"<div class=card><h1>Receipt {badge(found['status'])}</h1>"
            f"<p>{format_amount(found['amount'], found['currency'])} · "
            f"{_date(found['created'])}</p>"
            f"<p class=muted>{escape(brand_label(card['brand']))} •••• "
            f"{escape(card['last4'])}</p></div>"
        )
        return _html(page("Receipt", body))

    # --- The emulator's own dashboard and controls ------------------------------------

    def dashboard(self, request: Request) -> Response:
        emulator = self.emulator
        config = emulator.config
        store = emulator.store

        def yes(flag: Any) -> str:
            return "yes" if flag else "no"

        accounts = [
            [
                escape(a["id"]) + (" (platform)" if a.get("_platform") else ""),
                escape(a["business_profile"]["name"] or ""),
                escape(a["country"]),
                yes(a["charges_enabled"]),
                yes(a.get("_connected") or a.get("_platform")),
            ]
            for a in store.list("account", account=emulator.platform_id)
        ]
        events = [
            [
                _date(e["created"]),
                escape(e["type"]),
                escape(e.get("account", "platform")),
                escape(e["id"]),
                str(e["pending_webhooks"]),
            ]
            for e in store.list("event", account=None)[:30]
        ]
        deliveries = [
            [
                escape(d["event_id"]),
                badge(d["status"]),
                str(d["attempts"]),
                str(d["last_status"] or ""),
                _date(d["next_attempt_at"]),
            ]
            for d in store.deliveries(limit=30)
        ]
        advance = "".join(
            '<form method=post action="/_emulator/advance">'
            f"<input type=hidden name=seconds value={seconds}>"
            '<input type=hidden name=next value="/">'
            f"<button class=small type=submit>+{label}</button></form>"
            for seconds, label in (
                (3600, "1 hour"),
                (86400, "1 day"),
                (259200, "3 days"),
            )
        )
        summary = (
            f"Platform {emulator.platform_id} · Connect client {config.client_id} · "
            f"API version {config.api_version} · webhooks to "
            f"{config.webhook_url or '(none)'} · time scale {config.time_scale:g}"
        )
        body = (
            "<div class=card><h1>Stripe emulator</h1>"
            f"<p class=muted>{escape(summary)}</p>"
            f"<p>Emulator time: <strong>{_date(emulator.now())}</strong></p>"
            f"<div class=actions>{advance}</div></div>"
            "<div class=card><h2>Accounts</h2>"
            + table(["Id", "Name", "Country", "Charges", "Connected"], accounts)
            + "</div><div class=card><h2>Recent events</h2>"
            + table(
                ["Created", "Type", "Account", "Id", "Pending"], events, numeric={4}
            )
            + "</div><div class=card><h2>Webhook deliveries</h2>"
            + table(
                ["Event", "Status", "Attempts", "Last HTTP", "Next attempt"],
                deliveries,
                numeric={2, 3},
            )
            + "</div>"
        )
        return _html(page("Dashboard", body, wide=True))

    def _state(self) -> dict[str, Any]:
        emulator = self.emulator
        return {
            "now": emulator.now(),
            "platform_account": emulator.platform_id,
            "client_id": emulator.config.client_id,
            "api_version": emulator.config.api_version,
            "webhook_url": emulator.config.webhook_url,
            "time_scale": emulator.config.time_scale,
            "pending_deliveries": len(emulator.store.deliveries_due(None)),
        }

    def control_state(self, request: Request) -> Response:
        return _json(self._state())

    def control_advance(self, request: Request) -> Response:
        try:
            seconds = float(request.values.get("seconds", "0"))
        except ValueError:
            return _json({"error": "seconds must be a number"}, 400)
        if seconds < 0:
            return _json({"error": "time only moves forward"}, 400)
        self.emulator.advance(seconds)
        if request.values.get("next", "").startswith("/"):
            return redirect(request.values["next"], 303)
        return _json(self._state())

    def control_run_due(self, request: Request) -> Response:
        return _json({"ran": self.emulator.run_due(), **self._state()})

    def control_deliver(self, request: Request) -> Response:
        everything = request.values.get("all") == "true"
        results = self.emulator.deliver_pending(everything=everything)
        return _json({"delivered": [r.__dict__ for r in results]})

    def control_deliveries(self, request: Request) -> Response:
        return _json(
            {
                "data": self.emulator.store.deliveries(
                    event_id=request.args.get("event"),
                    limit=int(request.args.get("limit", "100")),
                )
            }
        )

    def control_faults(self, request: Request) -> Response:
        from stripe_emulator.faults import FaultError

        if request.method == "POST":
            try:
                self.emulator.faults.set(request.values.to_dict())
            except FaultError as exc:
                return _json({"error": str(exc)}, 400)
        return _json(self.emulator.faults.state())

    def control_reset(self, request: Request) -> Response:
        self.emulator.reset()
        return _json(self._state())
