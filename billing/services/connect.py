"""Connect with Stripe (OAuth, Standard accounts): the round trip that connects an
organization's own Stripe account, disconnecting it, and Stripe's account events."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from apimon import stripe_client as sc
from apimon.models import Membership, Organization, Role, User, hash_token
from apimon.payment_errors import (
    PaymentProviderError,
    StripeAccessDenied,
    StripeGrantInvalid,
    StripeOAuthRefused,
)
from billing import emails
from billing.catalog import connected_account
from billing.countries import supports_payouts
from billing.models import (
    OAuthState,
    StripeConnection,
)

log = logging.getLogger(__name__)


OAUTH_STATE_LIFETIME = timedelta(minutes=10)


def connect_redirect_uri() -> str:
    """The fixed callback registered with Stripe (not tenant-scoped)."""
    return settings.SITE_URL + reverse("stripe:connect-callback")


def stripe_connect_start(
    *, organization: Organization, user: User, session_key: str
) -> str:
    """A single-use state bound to the organization, the owner and their session;
    returns Stripe's authorize URL to send the owner to."""
    if not organization.plan.allows_monetization:
        raise ValidationError("Upgrade to a paid plan before connecting Stripe.")
    if connected_account(organization) is not None:
        raise ValidationError("A Stripe account is already connected.")
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    OAuthState.objects.create(
        state_hash=hash_token(token),
        organization=organization,
        user=user,
        session_key_hash=hash_token(session_key),
        created_at=now,
        expires_at=now + OAUTH_STATE_LIFETIME,
    )
    return sc.oauth_authorize_url(
        state=token,
        redirect_uri=connect_redirect_uri(),
        stripe_user={"email": user.email, "business_name": organization.name},
    )


class ConnectFailed(Exception):
    """The callback ends here; nothing was changed. `organization` is set when the
    state identified one the caller owns (for the "back" link)."""

    def __init__(
        self,
        reason: str,
        title: str,
        message: str,
        *,
        organization: Organization | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.title = title
        self.message = message
        self.organization = organization


def stripe_connect_complete(
    *,
    state: str,
    code: str,
    error: str,
    user: User,
    session_key: str,
) -> StripeConnection:
    """The OAuth callback: check the state, exchange the code, read the account and
    store the connection. Any failure raises ConnectFailed and changes nothing."""
    try:
        oauth_state = _use_state(state, user=user, session_key=session_key)
    except ConnectFailed as failure:
        if error == "access_denied":
            # Declined on Stripe's page: say so, whatever else is wrong.
            raise _denied(failure.organization) from None
        raise
    organization = oauth_state.organization
    if error:
        if error == "access_denied":
            raise _denied(organization)
        raise ConnectFailed(
            "oauth_error",
            "Stripe was not connected",
            f"Stripe answered “{error}”. Nothing was changed.",
            organization=organization,
        )
    if not code:
        raise ConnectFailed(
            "missing_code",
            "Stripe was not connected",
            "Stripe sent no authorization code back. Nothing was changed.",
            organization=organization,
        )
    current = connected_account(organization)
    if current is not None:
        raise ConnectFailed(
            "already_connected",
            "A Stripe account is already connected",
            f"{organization.name} is already connected to {current.account_id}. "
            "Disconnect it first to connect another account.",
            organization=organization,
        )
    try:
        token = sc.oauth_exchange(code)
    except StripeGrantInvalid:
        raise ConnectFailed(
            "invalid_grant",
            "This authorization was already used",
            "Stripe's authorization code has already been used or has expired. "
            "Start again with “Connect with Stripe”. Nothing was changed.",
            organization=organization,
        ) from None
    except StripeOAuthRefused as exc:
        raise ConnectFailed(
            "oauth_error",
            "Stripe was not connected",
            f"Stripe refused the connection ({exc}). Nothing was changed.",
            organization=organization,
        ) from None
    account_id = token["stripe_user_id"]
    taken = (
        StripeConnection.objects.filter(
            account_id=account_id, disconnected_at__isnull=True
        )
        .exclude(organization=organization)
        .exists()
    )
    if taken:
        # Not deauthorized: the other organization still uses this connection.
        raise _account_taken(account_id, organization)
    account = sc.get_client().v1.accounts.retrieve(account_id).to_dict()
    if not supports_payouts(account.get("country")):
        _deauthorize_quietly(account_id)
        raise ConnectFailed(
            "unsupported_country",
            "Stripe cannot pay out to this account",
            f"The Stripe account {account_id} is in a country "
            f"({account.get('country') or 'unknown'}) where Stripe does not support "
            "payouts, so it cannot receive your subscribers' payments. Connect an "
            "account registered in a supported country. Nothing was changed.",
            organization=organization,
        )
    try:
        with transaction.atomic():
            connection = _save_connection(
                organization=organization,
                user=user,
                account=account,
                livemode=bool(token.get("livemode")),
            )
    except IntegrityError:
        raise _account_taken(account_id, organization) from None
    return connection


def _denied(organization: Organization | None) -> ConnectFailed:
    return ConnectFailed(
        "denied",
        "Stripe was not connected",
        "You did not connect a Stripe account: the authorization was declined on "
        "Stripe's page. Nothing was changed.",
        organization=organization,
    )


def _use_state(state: str, *, user: User, session_key: str) -> OAuthState:
    if not state:
        raise ConnectFailed(
            "missing_state",
            "This link is not valid",
            "Stripe sent the browser back without the state apimon gave it, so "
            "apimon cannot tell which organization this is for. Nothing was changed.",
        )
    found = (
        OAuthState.objects.select_related("organization", "organization__plan")
        .filter(state_hash=hash_token(state))
        .first()
    )
    if found is None:
        raise ConnectFailed(
            "unknown_state",
            "This link is not valid",
            "apimon does not know this connection attempt. Start again with "
            "“Connect with Stripe”. Nothing was changed.",
        )
    is_owner = Membership.objects.filter(
        organization=found.organization, user=user, role=Role.OWNER
    ).exists()
    if found.user_id != user.pk or found.session_key_hash != hash_token(
        session_key or ""
    ):
        raise ConnectFailed(
            "wrong_session",
            "This link belongs to another session",
            "This connection was started by another sign-in. Start again with "
            "“Connect with Stripe” in this browser. Nothing was changed.",
            organization=found.organization if is_owner else None,
        )
    if not is_owner:
        raise ConnectFailed(
            "not_owner",
            "Only owners connect Stripe",
            "You are no longer an owner of this organization. Nothing was changed.",
        )
    now = timezone.now()
    if found.used_at is not None:
        raise ConnectFailed(
            "used_state",
            "This link was already used",
            "This connection attempt has already been completed or cancelled. Start "
            "again with “Connect with Stripe”. Nothing was changed.",
            organization=found.organization,
        )
    if found.expires_at <= now:
        raise ConnectFailed(
            "expired_state",
            "This link has expired",
            "More than 10 minutes passed since you clicked “Connect with Stripe”. "
            "Start again. Nothing was changed.",
            organization=found.organization,
        )
    # Single use: the first callback takes it, whatever happens next.
    taken = OAuthState.objects.filter(pk=found.pk, used_at__isnull=True).update(
        used_at=now
    )
    if not taken:
        raise ConnectFailed(
            "used_state",
            "This link was already used",
            "This connection attempt has already been completed. Nothing was changed.",
            organization=found.organization,
        )
    return found


def _account_taken(account_id: str, organization: Organization) -> ConnectFailed:
    return ConnectFailed(
        "account_taken",
        "This Stripe account is already in use",
        f"The Stripe account {account_id} is already connected to another "
        "organization on apimon. Each organization needs its own Stripe account. "
        "Nothing was changed.",
        organization=organization,
    )


def _deauthorize_quietly(account_id: str) -> None:
    try:
        sc.oauth_deauthorize(account_id)
    except PaymentProviderError as exc:  # the failure page is what matters
        log.warning("could not deauthorize %s: %s", account_id, exc)


def _account_fields(account: dict[str, Any]) -> dict[str, Any]:
    profile = account.get("business_profile") or {}
    dashboard = (account.get("settings") or {}).get("dashboard") or {}
    requirements = account.get("requirements") or {}
    return {
        "country": (account.get("country") or "").upper(),
        "default_currency": account.get("default_currency") or "",
        "charges_enabled": bool(account.get("charges_enabled")),
        "payouts_enabled": bool(account.get("payouts_enabled")),
        "account_data": {
            "email": account.get("email"),
            "business_name": profile.get("name") or dashboard.get("display_name"),
            "details_submitted": account.get("details_submitted"),
            "disabled_reason": requirements.get("disabled_reason"),
            "type": account.get("type"),
        },
    }


def _save_connection(
    *, organization: Organization, user: User, account: dict[str, Any], livemode: bool
) -> StripeConnection:
    connection = (
        StripeConnection.objects.select_for_update()
        .filter(organization=organization)
        .first()
    ) or StripeConnection(organization=organization)
    connection.account_id = account["id"]
    connection.livemode = livemode
    for name, value in _account_fields(account).items():
        setattr(connection, name, value)
    connection.connected_at = timezone.now()
    connection.connected_by = user
    connection.disconnected_at = None
    connection.monetization_enabled = False
    connection.monetization_enabled_at = None
    connection.billing_paused = False
    connection.save()
    return connection


def stripe_disconnect(*, organization: Organization) -> StripeConnection:
    """Deauthorize the platform on the account (OAuth) and mark it disconnected."""
    connection = connected_account(organization)
    if connection is None:
        raise ValidationError("No Stripe account is connected.")
    try:
        sc.oauth_deauthorize(connection.account_id)
    except (StripeOAuthRefused, StripeAccessDenied) as exc:
        # Already disconnected on Stripe's side: apimon only needs to catch up.
        log.info("deauthorize %s: %s", connection.account_id, exc)
    _mark_disconnected(connection)
    return connection


def _mark_disconnected(connection: StripeConnection) -> None:
    connection.disconnected_at = timezone.now()
    connection.monetization_enabled = False
    connection.billing_paused = True
    connection.save(
        update_fields=["disconnected_at", "monetization_enabled", "billing_paused"]
    )


def stripe_account_deauthorized(*, account_id: str) -> StripeConnection | None:
    """Stripe says the account removed apimon (`account.application.deauthorized`):
    the organization is disconnected, its billing paused and its owners told."""
    with transaction.atomic():
        connection = (
            StripeConnection.objects.select_for_update()
            .select_related("organization")
            .filter(account_id=account_id, disconnected_at__isnull=True)
            .first()
        )
        if connection is None:
            return None  # unknown, or already disconnected (e.g. by apimon itself)
        _mark_disconnected(connection)
        organization = connection.organization
        transaction.on_commit(
            lambda: emails.email_owners(
                organization,
                "stripe_disconnected",
                {"connection": connection, "organization": organization},
            )
        )
    return connection


def stripe_account_updated(*, account: dict[str, Any]) -> StripeConnection | None:
    """`account.updated`: keep charges_enabled / payouts_enabled current."""
    connection = StripeConnection.objects.filter(
        account_id=account.get("id"), disconnected_at__isnull=True
    ).first()
    if connection is None:
        return None
    fields = _account_fields(account)
    fields["account_data"] = {
        **connection.account_data,
        **fields["account_data"],
        "updated_at": timezone.now().isoformat(),
    }
    for name, value in fields.items():
        setattr(connection, name, value)
    connection.save(update_fields=list(fields))
    return connection
