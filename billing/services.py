"""Writes of the monetization part of billing (issue 5): the platform plan upgrade,
Connect with Stripe, Enable/Disable Monetization and disconnecting. Views, webhook
handlers, tasks and the admin call these; none of them holds the rules.

Everything Stripe goes through `apimon.stripe_client`. Writes carry idempotency keys
derived from the local row, so a retried request never does a thing twice.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from apimon import stripe_client as sc
from apimon.models import Membership, Organization, PlatformPlan, Role, User, hash_token
from billing.catalog import SyncResult, catalog_sync
from billing.countries import supports_payouts
from billing.models import (
    OAuthState,
    PlatformSubscription,
    PlatformSubscriptionStatus,
    StripeConnection,
)

log = logging.getLogger(__name__)

OAUTH_STATE_LIFETIME = timedelta(minutes=10)
PLATFORM_PLAN_PURPOSE = "platform_plan"


# --- Platform plans ---------------------------------------------------------------------


@dataclass(frozen=True)
class BillingDetails:
    name: str
    line1: str
    city: str
    postal_code: str
    country: str
    email: str
    phone: str
    line2: str = ""
    state: str = ""

    def stripe_customer(self) -> dict[str, Any]:
        # Stripe refuses empty strings for address fields: leave blank ones out.
        fields = {
            "line1": self.line1,
            "line2": self.line2,
            "city": self.city,
            "postal_code": self.postal_code,
            "state": self.state,
            "country": self.country,
        }
        address = {key: value for key, value in fields.items() if value}
        return {
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "address": address,
        }


def paid_plans():
    return PlatformPlan.objects.filter(
        is_active=True, is_trial=False, allows_monetization=True
    )


def platform_checkout_start(
    *,
    organization: Organization,
    plan: PlatformPlan,
    details: BillingDetails,
    success_url: str,
    cancel_url: str,
) -> str:
    """Record the billing details, make (or update) the organization's customer on the
    platform's own Stripe account, and open a Checkout Session in setup mode for its
    card. Returns the Checkout URL. The plan changes only when Checkout completes."""
    if plan not in paid_plans():
        raise ValidationError("This plan cannot be chosen.")
    if "{CHECKOUT_SESSION_ID}" not in success_url:
        raise ValueError("success_url must carry {CHECKOUT_SESSION_ID}")
    with transaction.atomic():
        sub, _ = PlatformSubscription.objects.select_for_update().get_or_create(
            organization=organization,
            defaults=_details_fields(details),
        )
        for name, value in _details_fields(details).items():
            setattr(sub, name, value)
        sub.pending_plan = plan
        sub.checkout_attempts += 1
        sub.save()
    client = sc.get_client()
    if not sub.customer_id:
        customer = client.v1.customers.create(
            {
                "description": organization.name,
                "metadata": {
                    "apimon_org_id": str(organization.pk),
                    "apimon_purpose": PLATFORM_PLAN_PURPOSE,
                },
            },
            sc.request_options(
                idempotency_key=sc.idempotency_key("platformsub", sub.pk, "customer")
            ),
        )
        sub.customer_id = customer.id
        sub.livemode = bool(customer.livemode)
        sub.save(update_fields=["customer_id", "livemode", "updated_at"])
    client.v1.customers.update(
        sub.customer_id,
        details.stripe_customer(),
        sc.request_options(
            idempotency_key=sc.idempotency_key(
                "platformsub", sub.pk, "details", sub.checkout_attempts
            )
        ),
    )
    metadata = {
        "apimon_purpose": PLATFORM_PLAN_PURPOSE,
        "organization_id": str(organization.pk),
        "plan": plan.slug,
    }
    session = client.v1.checkout.sessions.create(
        {
            "mode": "setup",
            "customer": sub.customer_id,
            "currency": plan.currency,
            "allowed_payment_method_types": ["card"],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": metadata,
            "setup_intent_data": {"metadata": metadata},
        },
        sc.request_options(
            idempotency_key=sc.idempotency_key(
                "platformsub", sub.pk, "checkout", sub.checkout_attempts
            )
        ),
    )
    sub.checkout_session_id = session.id
    sub.save(update_fields=["checkout_session_id", "updated_at"])
    return session.url


def _details_fields(details: BillingDetails) -> dict[str, str]:
    return {
        "billing_name": details.name,
        "address_line1": details.line1,
        "address_line2": details.line2,
        "city": details.city,
        "postal_code": details.postal_code,
        "state": details.state,
        "country": details.country,
        "email": details.email,
        "phone": details.phone,
    }


class CheckoutNotComplete(Exception):
    """The Checkout Session is not (yet) complete, or is not apimon's."""


def platform_checkout_complete(
    *, session_id: str, organization: Organization | None = None
) -> tuple[PlatformSubscription, bool]:
    """Finish an upgrade from its completed Checkout Session: the card becomes the
    customer's invoice default and the organization moves to the plan. Called by the
    browser's return and by the `checkout.session.completed` webhook, whichever comes
    first; the second finds it done. Returns (subscription, changed now)."""
    client = sc.get_client()
    try:
        session = client.v1.checkout.sessions.retrieve(
            session_id, {"expand": ["setup_intent.payment_method"]}
        ).to_dict()
    except sc.InvalidRequestError as exc:
        raise CheckoutNotComplete("No such Checkout Session.") from exc
    metadata = session.get("metadata") or {}
    if metadata.get("apimon_purpose") != PLATFORM_PLAN_PURPOSE:
        raise CheckoutNotComplete("This Checkout Session is not a plan upgrade.")
    org_id = int(metadata.get("organization_id") or 0)
    if organization is not None and organization.pk != org_id:
        raise CheckoutNotComplete("This Checkout Session is another organization's.")
    if session.get("status") != "complete":
        raise CheckoutNotComplete("The card has not been saved yet.")
    with transaction.atomic():
        sub = (
            PlatformSubscription.objects.select_for_update()
            .select_related("organization")
            .filter(organization_id=org_id)
            .first()
        )
        if sub is None or sub.customer_id != _id(session.get("customer")):
            raise CheckoutNotComplete("This Checkout Session is not apimon's.")
        if sub.completed_session_id == session["id"]:
            return sub, False
        plan = PlatformPlan.objects.get(slug=metadata["plan"])
        method = (session.get("setup_intent") or {}).get("payment_method") or {}
        if not method.get("id"):
            raise CheckoutNotComplete("Checkout saved no payment method.")
        # Checkout saves the card but does not make it the default for invoices.
        client.v1.customers.update(
            sub.customer_id,
            {"invoice_settings": {"default_payment_method": method["id"]}},
            sc.request_options(
                idempotency_key=sc.idempotency_key(
                    "platformsub", sub.pk, "default-payment-method", method["id"]
                )
            ),
        )
        now = timezone.now()
        if sub.status != PlatformSubscriptionStatus.ACTIVE or sub.started_at is None:
            # The plan is invoiced monthly in advance from here (billing engine).
            sub.started_at = now
            sub.next_invoice_at = now
        card = method.get("card") or {}
        sub.plan = plan
        sub.pending_plan = None
        sub.status = PlatformSubscriptionStatus.ACTIVE
        sub.payment_method_id = method["id"]
        sub.card_brand = card.get("brand") or ""
        sub.card_last4 = card.get("last4") or ""
        sub.completed_session_id = session["id"]
        sub.save()
        organization = sub.organization
        organization.plan = plan
        organization.save(update_fields=["plan"])
    log.info("%s upgraded to %s", organization, plan)
    return sub, True


def _id(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else value


# --- Connect with Stripe -----------------------------------------------------------------


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
    if StripeConnection.objects.filter(
        organization=organization, disconnected_at__isnull=True
    ).exists():
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
    current = StripeConnection.objects.filter(
        organization=organization, disconnected_at__isnull=True
    ).first()
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
    except sc.InvalidGrantError:
        raise ConnectFailed(
            "invalid_grant",
            "This authorization was already used",
            "Stripe's authorization code has already been used or has expired. "
            "Start again with “Connect with Stripe”. Nothing was changed.",
            organization=organization,
        ) from None
    except sc.OAuthError as exc:
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
    except sc.StripeError as exc:  # the failure page is what matters
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


def connected_account(organization: Organization) -> StripeConnection | None:
    return StripeConnection.objects.filter(
        organization=organization, disconnected_at__isnull=True
    ).first()


def stripe_disconnect(*, organization: Organization) -> StripeConnection:
    """Deauthorize the platform on the account (OAuth) and mark it disconnected."""
    connection = connected_account(organization)
    if connection is None:
        raise ValidationError("No Stripe account is connected.")
    try:
        sc.oauth_deauthorize(connection.account_id)
    except (sc.OAuthError, sc.AuthenticationError, sc.PermissionError) as exc:
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
            lambda: _email_owners(
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


def _email_owners(organization: Organization, template: str, context: dict) -> None:
    owners = list(
        Membership.objects.filter(
            organization=organization, role=Role.OWNER
        ).values_list("user__email", flat=True)
    )
    if not owners:
        return
    context = {
        **context,
        "link": settings.SITE_URL
        + reverse("monetization:status", args=[organization.slug]),
    }
    send_mail(
        subject=render_to_string(f"emails/{template}_subject.txt", context).strip(),
        message=render_to_string(f"emails/{template}_body.txt", context),
        html_message=render_to_string(f"emails/{template}_body.html", context),
        from_email=None,
        recipient_list=owners,
    )


# --- Enable / disable monetization ----------------------------------------------------


def monetization_enable(*, organization: Organization) -> SyncResult:
    """Create the catalog on the connected account (idempotent), then turn
    monetization on. The password check happens before (the view's form)."""
    if not organization.plan.allows_monetization:
        raise ValidationError("Upgrade to a paid plan to enable monetization.")
    connection = connected_account(organization)
    if connection is None:
        raise ValidationError("Connect a Stripe account first.")
    result = catalog_sync(organization=organization)
    connection.monetization_enabled = True
    if connection.monetization_enabled_at is None:
        connection.monetization_enabled_at = timezone.now()
    connection.billing_paused = False
    connection.save(
        update_fields=[
            "monetization_enabled",
            "monetization_enabled_at",
            "billing_paused",
        ]
    )
    return result


def monetization_disable(*, organization: Organization) -> StripeConnection:
    """No new paid subscriptions; existing ones run to the end of their period."""
    connection = connected_account(organization)
    if connection is None or not connection.monetization_enabled:
        raise ValidationError("Monetization is not enabled.")
    connection.monetization_enabled = False
    connection.monetization_enabled_at = None
    connection.save(update_fields=["monetization_enabled", "monetization_enabled_at"])
    return connection
