"""Accounts, account links and Connect OAuth (token exchange, deauthorization)."""

from __future__ import annotations

from typing import Any

import stripe.params as P

from stripe_emulator import objects
from stripe_emulator.api.common import list_objects, platform_only, set_metadata
from stripe_emulator.api.router import route
from stripe_emulator.emulator import Ctx
from stripe_emulator.errors import OAuthError, StripeError, invalid
from stripe_emulator.ids import new_id, random_token
from stripe_emulator.objects import public
from stripe_emulator.webhooks import previous_attributes

ACCOUNT_LINK_TTL = 300  # Stripe's account links expire after a few minutes
OAUTH_CODE_TTL = 300


def no_access(key_hint: str, account_id: str) -> StripeError:
    return StripeError(
        403,
        f"The provided key '{key_hint}' does not have access to account '{account_id}' "
        "(or that account does not exist). Application access may have been revoked.",
        code="account_invalid",
    )


def connected_account(ctx: Ctx, account_id: str) -> dict[str, Any] | None:
    """A connected account of the platform (None if unknown or disconnected)."""
    acct = ctx.store.get(account_id, account=ctx.platform_id)
    if acct is None or acct.get("object") != "account" or not acct.get("_connected"):
        return None
    return acct


def create_account(
    ctx: Ctx,
    *,
    email: str | None,
    business_name: str | None,
    country: str,
    type: str = "standard",
    onboarded: bool = False,
    ip: str | None = None,
    url: str | None = None,
    product_description: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    if country not in objects.COUNTRIES:
        raise invalid(
            f"Country '{country}' is unknown. Try using a 2-character alphanumeric "
            "country code instead, such as 'US', 'EG', or 'GB'.",
            param="country",
        )
    acct = objects.account(
        id=new_id("account"),
        created=ctx.now(),
        email=email,
        business_name=business_name,
        country=country,
        type=type,
        url=url,
        product_description=product_description,
        metadata=metadata,
    )
    if onboarded:
        objects.complete_onboarding(acct, now=ctx.now(), ip=ip)
    acct["_connected"] = False
    ctx.store.insert(acct, account=ctx.platform_id)
    return acct


def connect(ctx: Ctx, acct: dict[str, Any]) -> None:
    """The platform gains access to the account (OAuth authorize, or API creation)."""
    if acct.get("_connected"):
        return
    acct["_connected"] = True
    ctx.store.save(acct)
    app = objects.application(
        ctx.emulator.config.client_id, ctx.emulator.config.platform_name
    )
    ctx.for_account(acct["id"]).emit("account.application.authorized", app)


def update_account(ctx: Ctx, acct: dict[str, Any], change: Any) -> dict[str, Any]:
    """Apply `change(acct)` and emit account.updated (with previous attributes)."""
    before = public(acct)
    change(acct)
    ctx.store.save(acct)
    previous = previous_attributes(before, public(acct))
    if previous:
        ctx.for_account(acct["id"]).emit("account.updated", acct, previous=previous)
    return acct


@route("GET", "/v1/account", P.AccountRetrieveCurrentParams)
def account_current(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    acct = ctx.store.get(ctx.account)
    assert acct is not None
    return public(acct)


@route("POST", "/v1/accounts", P.AccountCreateParams)
def account_create(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    platform_only(ctx, "create accounts")
    kind = params.get("type")
    if kind is None:
        controller = params.get("controller") or {}
        dashboard = (controller.get("stripe_dashboard") or {}).get("type")
        kind = {"full": "standard", "express": "express", "none": "custom"}.get(
            dashboard or "full"
        )
    business_profile = params.get("business_profile") or {}
    acct = create_account(
        ctx,
        email=params.get("email"),
        business_name=business_profile.get("name"),
        country=(params.get("country") or "US").upper(),
        type=kind,
        url=business_profile.get("url"),
        product_description=business_profile.get("product_description"),
        metadata=params.get("metadata") or {},
    )
    acct["_connected"] = True
    ctx.store.save(acct)
    return public(acct)


@route("GET", "/v1/accounts", P.AccountListParams)
def account_list(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    platform_only(ctx, "list accounts")
    return list_objects(
        ctx,
        "account",
        params,
        "/v1/accounts",
        where=lambda acct: bool(acct.get("_connected")),
    )


def _account_for(ctx: Ctx, account_id: str, key_hint: str) -> dict[str, Any]:
    if account_id == ctx.account:
        acct = ctx.store.get(account_id)
        assert acct is not None
        return acct
    acct = connected_account(ctx, account_id) if ctx.is_platform else None
    if acct is None:
        raise no_access(key_hint, account_id)
    return acct


@route("GET", "/v1/accounts/<account>", P.AccountRetrieveParams)
def account_retrieve(ctx: Ctx, params: dict[str, Any], account: str) -> dict[str, Any]:
    return public(_account_for(ctx, account, ctx.key_hint))


@route("POST", "/v1/accounts/<account>", P.AccountUpdateParams)
def account_update(ctx: Ctx, params: dict[str, Any], account: str) -> dict[str, Any]:
    acct = _account_for(ctx, account, ctx.key_hint)

    def change(obj: dict[str, Any]) -> None:
        if "metadata" in params:
            set_metadata(obj, params["metadata"])
        if "email" in params:
            obj["email"] = params["email"] or None
        profile = params.get("business_profile") or {}
        for key in (
            "name",
            "url",
            "product_description",
            "support_email",
            "support_url",
            "support_phone",
            "mcc",
        ):
            if key in profile:
                obj["business_profile"][key] = profile[key] or None
        if "name" in profile:
            obj["settings"]["dashboard"]["display_name"] = profile["name"] or None
        if "default_currency" in params:
            obj["default_currency"] = params["default_currency"]

    return public(update_account(ctx, acct, change))


@route("POST", "/v1/account_links", P.AccountLinkCreateParams)
def account_link_create(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    acct = _account_for(ctx, params["account"], ctx.key_hint)
    if params["type"] not in ("account_onboarding", "account_update"):
        raise invalid(f"Invalid type: {params['type']}", param="type")
    if not params.get("return_url") or not params.get("refresh_url"):
        from stripe_emulator.errors import missing_param

        raise missing_param(
            "refresh_url" if not params.get("refresh_url") else "return_url"
        )
    now = ctx.now()
    token = random_token(24)
    link = {
        "id": f"acctlink_{token}",
        "object": "account_link_token",
        "created": now,
        "expires_at": now + ACCOUNT_LINK_TTL,
        "account": acct["id"],
        "refresh_url": params["refresh_url"],
        "return_url": params["return_url"],
        "used": False,
    }
    ctx.store.insert(link, account=ctx.platform_id)
    return {
        "object": "account_link",
        "created": now,
        "expires_at": now + ACCOUNT_LINK_TTL,
        "url": ctx.url(f"/setup/s/{acct['id']}/{token}"),
    }


# --- Connect OAuth (connect.stripe.com) -----------------------------------------------


def issue_code(ctx: Ctx, account_id: str, scope: str) -> str:
    code = f"ac_{random_token(32)}"
    ctx.store.insert(
        {
            "id": code,
            "object": "oauth_code",
            "created": ctx.now(),
            "account": account_id,
            "scope": scope,
            "used": False,
        },
        account=ctx.platform_id,
    )
    return code


def _token_for(ctx: Ctx, account_id: str, scope: str) -> dict[str, Any]:
    access_token = f"sk_test_{random_token(40)}"
    refresh_token = f"rt_{random_token(40)}"
    for token_id, kind in (
        (access_token, "oauth_token"),
        (refresh_token, "oauth_refresh"),
    ):
        ctx.store.insert(
            {
                "id": token_id,
                "object": kind,
                "created": ctx.now(),
                "account": account_id,
                "scope": scope,
            },
            account=ctx.platform_id,
        )
    return {
        "access_token": access_token,
        "livemode": False,
        "refresh_token": refresh_token,
        "scope": scope,
        "stripe_publishable_key": f"pk_test_{random_token(40)}",
        "stripe_user_id": account_id,
        "token_type": "bearer",
    }


def oauth_token(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    grant_type = params.get("grant_type")
    if grant_type == "authorization_code":
        code = params.get("code")
        if not code:
            raise OAuthError("invalid_request", "No authorization code provided")
        record = ctx.store.get(code, account=ctx.platform_id)
        if record is None or record.get("object") != "oauth_code":
            raise OAuthError(
                "invalid_grant", f"Authorization code does not exist: {code}"
            )
        if record["used"]:
            raise OAuthError(
                "invalid_grant", f"Authorization code already used: {code}"
            )
        if ctx.now() > record["created"] + OAUTH_CODE_TTL:
            raise OAuthError("invalid_grant", f"Authorization code expired: {code}")
        record["used"] = True
        ctx.store.save(record)
        return _token_for(ctx, record["account"], record["scope"])
    if grant_type == "refresh_token":
        token = params.get("refresh_token") or params.get("code")
        record = ctx.store.get(token or "", account=ctx.platform_id)
        if record is None or record.get("object") != "oauth_refresh":
            raise OAuthError("invalid_grant", f"Invalid refresh token: {token}")
        if connected_account(ctx, record["account"]) is None:
            raise OAuthError("invalid_grant", "Application access was revoked.")
        return _token_for(
            ctx, record["account"], params.get("scope") or record["scope"]
        )
    raise OAuthError("unsupported_grant_type", f"Unsupported grant type: {grant_type}")


def oauth_deauthorize(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    client_id = params.get("client_id")
    if client_id != ctx.emulator.config.client_id:
        raise OAuthError("invalid_client", f"No such application: '{client_id}'")
    account_id = params.get("stripe_user_id") or ""
    acct = connected_account(ctx, account_id)
    if acct is None:
        raise OAuthError(
            "invalid_client",
            f"This application is not connected to stripe account {account_id}, or "
            "that "
            "account does not exist.",
        )
    acct["_connected"] = False
    ctx.store.save(acct)
    app = objects.application(
        ctx.emulator.config.client_id, ctx.emulator.config.platform_name
    )
    ctx.for_account(account_id).emit("account.application.deauthorized", app)
    return {"stripe_user_id": account_id}
