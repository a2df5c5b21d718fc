"""The WSGI application: Stripe's three hosts on one port.

- api     `/v1/...`            JSON API (auth, Stripe-Account, idempotency, expand)
- connect `/oauth/...`         OAuth authorize page, token exchange, deauthorization
- pages   `/c/pay/…`, `/i/…`,  hosted Checkout, invoice page and PDF, onboarding,
          `/setup/s/…`, `/`    and the emulator's own dashboard
- control `/_emulator/...`     emulator-only endpoints (time, deliveries, reset)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from stripe_emulator.errors import OAuthError, StripeError
from stripe_emulator.expand import expand
from stripe_emulator.ids import new_id
from stripe_emulator.params import decode_form, validate_params

if TYPE_CHECKING:
    from stripe_emulator.api.router import Route
    from stripe_emulator.emulator import Emulator

log = logging.getLogger("stripe_emulator")

IDEMPOTENCY_TTL = 24 * 3600

NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the "
    "Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)


@dataclass(frozen=True)
class Auth:
    scope: str  # whose idempotency keys: "platform" or the OAuth access token
    account: str | None  # the account an OAuth access token acts as
    hint: str  # the key, masked, for messages


def mask(key: str) -> str:
    parts = key.split("_", 2)
    prefix = "_".join(parts[:2]) + "_" if len(parts) == 3 else ""
    secret = key[len(prefix) :]
    return prefix + "*" * max(0, len(secret) - 4) + secret[-4:]


def json_response(
    status: int, body: Any, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(body, indent=2) + "\n",
        status=status,
        headers=headers or {},
        content_type="application/json",
    )


def credentials(request: Request) -> tuple[str, str, str]:
    """The Authorization header as (scheme, token or user name, password):
    ("bearer", token, "") or ("basic", user, password); ("", "", "") otherwise."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return "bearer", header[7:].strip(), ""
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:]).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "basic", "", ""
        user, _, password = decoded.partition(":")
        return "basic", user, password
    return "", "", ""


class EmulatorApp:
    def __init__(self, emulator: Emulator) -> None:
        from stripe_emulator.api import ROUTES
        from stripe_emulator.pages import Pages

        self.emulator = emulator
        self.routes: list[Route] = ROUTES
        self.api_map = Map(
            [
                Rule(r.rule, endpoint=index, methods=[r.method])
                for index, r in enumerate(ROUTES)
            ],
            strict_slashes=False,
        )
        self.pages = Pages(emulator)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        return self.dispatch(request)(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        if self.is_operator_path(request.path) and not self.is_operator(request):
            return self.operator_refusal(request)
        fault = self.emulator.faults.take(request.path)
        if fault == "error":
            return json_response(
                500,
                StripeError(
                    500,
                    "An unknown error occurred (injected by the emulator's "
                    "/_emulator/faults).",
                    type="api_error",
                ).body(),
                {"Request-Id": new_id("request")},
            )
        if fault == "timeout":
            self.emulator.faults.hold()  # outside the lock: others are served
        if request.path.startswith("/_emulator/deliver"):
            # Delivering calls the receiver, which may call back in: no lock held here.
            return self.pages.dispatch(request)
        with self.emulator.store.lock:
            self.emulator.remember_base_url(request.host_url.rstrip("/"))
            if request.path.startswith("/v1/"):
                return self.api(request)
            if request.path in ("/oauth/token", "/oauth/deauthorize"):
                return self.oauth_api(request)
            return self.pages.dispatch(request)

    def base_url(self, request: Request) -> str:
        return self.emulator.config.public_url or request.host_url.rstrip("/")

    # --- closed mode: the operator's pages and controls ---------------------------------

    @staticmethod
    def is_operator_path(path: str) -> bool:
        """The dashboard and the controls show and change every tenant's data."""
        return path == "/" or path == "/_emulator" or path.startswith("/_emulator/")

    def is_operator(self, request: Request) -> bool:
        """Open emulator: anyone. Closed: `Authorization: Bearer <secret>`, or Basic
        with the secret as the password (what a browser sends for the dashboard)."""
        secret = self.emulator.config.control_secret
        if secret is None:
            return True
        scheme, user, password = credentials(request)
        given = user if scheme == "bearer" else password
        return hmac.compare_digest(given.encode(), secret.encode())

    @staticmethod
    def operator_refusal(request: Request) -> Response:
        headers = {"WWW-Authenticate": 'Basic realm="Stripe emulator"'}
        if request.path == "/":
            return Response(
                "The Stripe emulator's dashboard needs its control secret "
                "(STRIPE_EMULATOR_CONTROL_SECRET) as the password.\n",
                status=401,
                headers=headers,
                content_type="text/plain; charset=utf-8",
            )
        return json_response(
            401,
            {
                "error": "unauthorized",
                "message": "Send the emulator's control secret: "
                "'Authorization: Bearer <STRIPE_EMULATOR_CONTROL_SECRET>'.",
            },
            headers,
        )

    # --- authentication ---------------------------------------------------------------

    def authenticate(
        self, request: Request, *, fallback_key: str | None = None
    ) -> Auth:
        # Stripe takes the key as a bearer token or as Basic auth's user name.
        _scheme, key, _password = credentials(request)
        key = key or (fallback_key or "")
        unauthorized = {"WWW-Authenticate": 'Basic realm="Stripe"'}
        if not key:
            raise StripeError(401, NO_KEY, headers=unauthorized)
        hint = mask(key)
        if key.startswith("sk_test_"):
            token = self.emulator.store.get(key, account=self.emulator.platform_id)
            if token is not None and token.get("object") == "oauth_token":
                from stripe_emulator.api.accounts import connected_account

                ctx = self.emulator.context()
                if connected_account(ctx, token["account"]) is None:
                    raise StripeError(
                        401,
                        f"Expired API Key provided: {hint}. Application access may "
                        "have been "
                        "revoked.",
                        code="api_key_expired",
                        headers=unauthorized,
                    )
                return Auth(scope=key, account=token["account"], hint=hint)
        platform_key = self.emulator.config.platform_key
        if platform_key is not None:
            # Closed: only the operator's platform key, not any test key.
            if hmac.compare_digest(key.encode(), platform_key.encode()):
                return Auth(scope="platform", account=None, hint=hint)
        elif key.startswith(("sk_test_", "rk_test_")):
            return Auth(scope="platform", account=None, hint=hint)
        raise StripeError(
            401, f"Invalid API Key provided: {hint}", headers=unauthorized
        )

    def acting_account(self, request: Request, auth: Auth) -> str:
        from stripe_emulator.api.accounts import connected_account, no_access

        requested = request.headers.get("Stripe-Account", "").strip()
        if auth.account is not None:
            if requested and requested != auth.account:
                raise no_access(auth.hint, requested)
            return auth.account
        if not requested or requested == self.emulator.platform_id:
            return self.emulator.platform_id
        if connected_account(self.emulator.context(), requested) is None:
            raise no_access(auth.hint, requested)
        return requested

    # --- the API ----------------------------------------------------------------------

    def _match(self, request: Request) -> tuple[Route, dict[str, str]]:
        adapter = self.api_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except (NotFound, MethodNotAllowed, HTTPException):
            raise StripeError(
                404,
                f"Unrecognized request URL ({request.method}: {request.path}). Please "
                "see "
                "https://stripe.com/docs or we can help at "
                "https://support.stripe.com/. "
                "(The Stripe emulator implements the endpoints listed in "
                "docs/stripe-emulator.md.)",
            ) from None
        return self.routes[endpoint], args

    @staticmethod
    def raw_params(request: Request) -> dict[str, Any]:
        pairs = list(request.args.items(multi=True))
        if request.method == "POST":
            pairs += list(request.form.items(multi=True))
        return decode_form(pairs)

    def api(self, request: Request) -> Response:
        emulator = self.emulator
        request_id = new_id("request")
        headers = {
            "Request-Id": request_id,
            "Stripe-Version": request.headers.get("Stripe-Version")
            or emulator.config.api_version,
        }
        key = (
            request.headers.get("Idempotency-Key") if request.method == "POST" else None
        )
        if key:
            headers["Idempotency-Key"] = key
        try:
            auth = self.authenticate(request)
            account = self.acting_account(request, auth)
            if request.headers.get("Stripe-Account"):
                headers["Stripe-Account"] = account
            route, args = self._match(request)
            raw = self.raw_params(request)
            scope = f"{auth.scope}|{account}"
            fingerprint = hashlib.sha256(
                json.dumps(raw, sort_keys=True).encode()
            ).hexdigest()
            if key:
                replay = self._replay(request, scope, key, fingerprint, headers)
                if replay is not None:
                    return replay
            from stripe_emulator.emulator import Ctx

            ctx = Ctx(
                emulator, account, self.base_url(request), request_id, key, auth.hint
            )
            keep_result = True
            try:
                params = validate_params(route.params, raw)
                paths = params.pop("expand", None) or []
                with emulator.store.atomic(
                    keep=lambda exc: isinstance(exc, StripeError) and exc.persist
                ):
                    body = expand(ctx, route.handler(ctx, params, **args), paths)
                status = 200
            except StripeError as error:
                status, body = error.status, error.body()
                headers.update(error.headers)
                # Stripe saves a result once the endpoint started executing (a decline
                # included), not for requests rejected by validation.
                keep_result = error.persist or status >= 500
            except Exception as exc:
                # A bug in the emulator: answer like Stripe's api_error, and tell
                # stripe-python not to retry something that will fail the same way.
                log.exception("%s %s failed", request.method, request.path)
                status = 500
                body = StripeError(
                    500, f"The Stripe emulator failed: {exc!r}", type="api_error"
                ).body()
                headers["Stripe-Should-Retry"] = "false"
                keep_result = False
            if key and keep_result:
                emulator.store.idempotent_put(
                    scope,
                    key,
                    request.method,
                    request.path,
                    fingerprint,
                    status,
                    json.dumps({"request_id": request_id, "body": body}),
                    emulator.now(),
                )
        except StripeError as error:
            status, body = error.status, error.body()
            headers.update(error.headers)
        return json_response(status, body, headers)

    def _replay(
        self,
        request: Request,
        scope: str,
        key: str,
        fingerprint: str,
        headers: dict[str, str],
    ) -> Response | None:
        store = self.emulator.store
        store.idempotent_expire(self.emulator.now() - IDEMPOTENCY_TTL)
        saved = store.idempotent_get(scope, key)
        if saved is None:
            return None
        method, path, saved_fingerprint, status, body, _created = saved
        if (method, path) != (request.method, request.path):
            raise StripeError(
                400,
                "Keys for idempotent requests can only be used for the same endpoint "
                "they were "
                f"first used for ('{method} {path}' vs '{request.method} "
                f"{request.path}'). Try "
                f"using a key other than '{key}' if you meant to execute a different "
                "request.",
                type="idempotency_error",
            )
        if saved_fingerprint != fingerprint:
            raise StripeError(
                400,
                "Keys for idempotent requests can only be used with the same "
                "parameters they "
                f"were first used with. Try using a key other than '{key}' if you "
                "meant to "
                "execute a different request.",
                type="idempotency_error",
            )
        saved_body = json.loads(body)
        headers = {
            **headers,
            "Idempotent-Replayed": "true",
            "Original-Request": saved_body["request_id"],
        }
        return json_response(status, saved_body["body"], headers)

    # --- Connect OAuth API ------------------------------------------------------------

    def oauth_api(self, request: Request) -> Response:
        from stripe._oauth import OAuth

        from stripe_emulator.api.accounts import oauth_deauthorize, oauth_token
        from stripe_emulator.params import accepted_parameters

        if request.method != "POST":
            return json_response(
                404, {"error": "invalid_request", "error_description": "Use POST."}
            )
        raw = self.raw_params(request)
        try:
            self.authenticate(request, fallback_key=raw.pop("client_secret", None))
            if request.path == "/oauth/token":
                allowed, handler = (
                    accepted_parameters(OAuth.OAuthTokenParams),
                    oauth_token,
                )
            else:
                allowed = accepted_parameters(OAuth.OAuthDeauthorizeParams)
                handler = oauth_deauthorize
            unknown = sorted(set(raw) - allowed)
            if unknown:
                raise OAuthError("invalid_request", f"Unknown parameter: {unknown[0]}")
            ctx = self.emulator.context(base_url=self.base_url(request))
            with self.emulator.store.atomic():
                body = handler(ctx, raw)
            return json_response(200, body)
        except OAuthError as error:
            status = 401 if error.error == "invalid_client" else error.status
            return json_response(status, error.body())
        except StripeError as error:
            return json_response(error.status, error.body(), error.headers)
