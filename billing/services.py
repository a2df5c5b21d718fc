"""Writes of the monetization part of billing (issue 5): the platform plan upgrade,
Connect with Stripe, Enable/Disable Monetization and disconnecting. Views, webhook
handlers, tasks and the admin call these; none of them holds the rules.

Everything Stripe goes through `apimon.stripe_client`. Writes carry idempotency keys
derived from the local row, so a retried request never does a thing twice.

The second part (issue 8, below "Invoices") holds the billing engine's writes beyond
the period job (billing.engine): payments and dunning, its Stripe webhook handlers,
corrections, voids, and the hooks the store and the publisher call.

Subscription state only moves forward here (docs/billing.md, "Dunning"):
ACTIVE → ON_HOLD on a failed payment (served for the organization's grace period),
ON_HOLD → BLOCKED when the grace period is over (the dunning job), and ON_HOLD or a
dunning BLOCKED → ACTIVE once no failed invoice of the subscription is left unpaid.
A publisher's block is never lifted by a payment; cancelled subscriptions stay
cancelled.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from apimon import stripe_client as sc
from apimon.models import Membership, Organization, PlatformPlan, Role, User, hash_token
from billing import emails, engine
from billing.catalog import SyncResult, catalog_sync, connected_account
from billing.countries import supports_payouts
from billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    OAuthState,
    PlatformSubscription,
    PlatformSubscriptionStatus,
    StripeConnection,
    failed_unpaid_invoices,
)
from billing.rating import Line, Pricing, PricingModel, proration_lines, usage_lines
from billing.stripe_money import chargeable_lines
from store.models import Subscription, SubscriptionEvent, SubscriptionState

log = logging.getLogger(__name__)


OAUTH_STATE_LIFETIME = timedelta(minutes=10)


PLATFORM_PLAN_PURPOSE = "platform_plan"


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
        if sub is None or sub.customer_id != sc.object_id(session.get("customer")):
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
            sub.past_due_since = None
            sub.grace_until = None
        elif sub.is_past_due:
            # A new card for a past-due plan: pay the failed invoices with it now.
            from billing.tasks import retry_platform_payment

            pk = sub.pk
            transaction.on_commit(lambda: retry_platform_payment.delay(pk), robust=True)
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


def monetization_disable(
    *, organization: Organization, actor: User | None = None
) -> StripeConnection:
    """No new paid subscriptions; existing ones run to the end of their period: each
    live paid subscription is set to cancel at its period end (its subscriber sees
    the date and may undo it once monetization is on again)."""
    from store.services import subscription_cancel

    with transaction.atomic():
        connection = connected_account(organization)
        if connection is None or not connection.monetization_enabled:
            raise ValidationError("Monetization is not enabled.")
        connection.monetization_enabled = False
        connection.monetization_enabled_at = None
        connection.save(
            update_fields=["monetization_enabled", "monetization_enabled_at"]
        )
        paid = (
            Subscription.objects.filter(
                organization=organization,
                state__in=[
                    SubscriptionState.ACTIVE,
                    SubscriptionState.TRIALING,
                    SubscriptionState.ON_HOLD,
                ],
                started_at__isnull=False,
                cancel_at_period_end=False,
            )
            .exclude(tier_version__pricing_model=PricingModel.FREE)
            .order_by("pk")
        )
        for subscription in paid:
            subscription_cancel(subscription=subscription, actor=actor)
    return connection


# --- Invoices (issue 8: the billing engine) -----------------------------------


DUNNING_NOTE = "Payment failed and the grace period ended."


def _invalidate(subscription_ids: list[int]) -> None:
    from publisher.services import invalidate_gateway_on_commit

    invalidate_gateway_on_commit(subscription_ids=subscription_ids)


def _ts(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def invoice_payment_failed_apply(
    *,
    invoice: Invoice,
    stripe_invoice: dict[str, Any],
    message: str,
    at: datetime,
    event_created: int | None = None,
) -> bool:
    """A payment attempt of `invoice` failed: record it and put the subscription on
    hold. Ignored when the invoice is already paid or void (an old event)."""
    from billing.push import apply_stripe_invoice

    apply_stripe_invoice(invoice, stripe_invoice, event_created=event_created)
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if locked.status not in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
            return False
        if locked.payment_failed_at is None or locked.payment_failed_at < at:
            locked.payment_failed_at = at
            locked.last_payment_error = message
            locked.payment_failures = max(
                locked.payment_failures, stripe_invoice.get("attempt_count") or 1
            )
            locked.save(
                update_fields=[
                    "payment_failed_at",
                    "last_payment_error",
                    "payment_failures",
                ]
            )
        invoice.payment_failed_at = locked.payment_failed_at
    if invoice.subscription_id:
        subscription_payment_failed(subscription_id=invoice.subscription_id, at=at)
    elif invoice.platform_subscription_id:
        platform_payment_failed(
            platform_subscription_id=invoice.platform_subscription_id, at=at
        )
    return True


def invoice_settled(*, invoice: Invoice, at: datetime) -> None:
    """`invoice` is paid or void: what it held back may recover (a subscriber's
    subscription, or an organization's past-due platform plan)."""
    if invoice.subscription_id:
        subscription_payment_recovered(subscription_id=invoice.subscription_id, at=at)
    elif invoice.platform_subscription_id:
        platform_payment_recovered(
            platform_subscription_id=invoice.platform_subscription_id, at=at
        )


def subscription_payment_failed(*, subscription_id: int, at: datetime) -> bool:
    """ACTIVE → ON_HOLD with a grace period (the organization's setting)."""
    with transaction.atomic():
        sub = (
            Subscription.objects.select_for_update(of=("self",))
            .select_related("organization")
            .get(pk=subscription_id)
        )
        if sub.state != SubscriptionState.ACTIVE:
            return False
        grace = timedelta(days=sub.organization.dunning_grace_days)
        sub.state = SubscriptionState.ON_HOLD
        sub.on_hold_since = at
        sub.grace_until = at + grace
        sub.save(update_fields=["state", "on_hold_since", "grace_until", "updated_at"])
        SubscriptionEvent.objects.create(
            subscription=sub,
            kind="payment_failed",
            at=at,
            from_state=SubscriptionState.ACTIVE,
            to_state=SubscriptionState.ON_HOLD,
            note=f"A payment failed; served until {sub.grace_until:%Y-%m-%d %H:%M} UTC.",
        )
        _invalidate([sub.pk])
    _notify(sub, "payment_failed")
    return True


def subscription_payment_recovered(*, subscription_id: int, at: datetime) -> bool:
    """ON_HOLD, or BLOCKED by dunning, → ACTIVE once no failed invoice is unpaid.
    A subscription blocked while it was not charged a period's fee is charged the
    rest of that period now (pro rata)."""
    with transaction.atomic():
        sub = (
            Subscription.objects.select_for_update(of=("self",))
            .select_related("tier_version", "organization__plan", "customer")
            .get(pk=subscription_id)
        )
        dunning_block = (
            sub.state == SubscriptionState.BLOCKED
            and not sub.blocked_by_publisher
            and sub.on_hold_since is not None
        )
        if sub.state != SubscriptionState.ON_HOLD and not dunning_block:
            return False
        if failed_unpaid_invoices(subscription_id=sub.pk).exists():
            return False
        from_state = sub.state
        sub.state = SubscriptionState.ACTIVE
        sub.on_hold_since = None
        sub.grace_until = None
        sub.blocked_reason = ""
        sub.save(
            update_fields=[
                "state",
                "on_hold_since",
                "grace_until",
                "blocked_reason",
                "updated_at",
            ]
        )
        event = SubscriptionEvent.objects.create(
            subscription=sub,
            kind="payment_recovered",
            at=at,
            from_state=from_state,
            to_state=SubscriptionState.ACTIVE,
            note="Every failed invoice is paid.",
        )
        if from_state == SubscriptionState.BLOCKED:
            _charge_rest_of_period(sub, event)
        _invalidate([sub.pk])
    return True


def _charge_rest_of_period(sub: Subscription, event: SubscriptionEvent) -> None:
    """A dunning-blocked subscription is charged no new fee at a boundary; back to
    ACTIVE mid-period, it pays the rest of that period's fee."""
    start, end = sub.current_period_start, sub.current_period_end
    if not (start and end and start <= event.at < end):
        return
    has_fee = sub.invoices.filter(
        lines__kind="FIXED", lines__period_start=start
    ).exists()
    if has_fee:
        return
    new = sub.tier_version.pricing()
    nothing = Pricing(model=PricingModel.FREE, currency=new.currency)
    lines = proration_lines(
        old=nothing,
        new=new,
        period_start=start,
        period_end=end,
        changed_at=event.at,
        new_name=sub.tier.name,
    )
    if lines:
        draft = engine.Draft(
            kind=InvoiceKind.PRORATION,
            period_start=event.at,
            period_end=end,
            lines=[
                engine.DraftLine(x, sub.tier_version_id)
                for x in chargeable_lines(lines)
            ],
            tier_version_id=sub.tier_version_id,
            source_event_id=event.pk,
        )
        engine.write_single(sub, [draft], now=event.at)


def dunning_run(*, now: datetime | None = None) -> int:
    """BLOCK every ON_HOLD subscription whose grace period is over; returns how
    many. Claims rows with skip_locked, so two runs never block one twice."""
    now = now or timezone.now()
    blocked = []
    with transaction.atomic():
        subs = list(
            Subscription.objects.select_for_update(skip_locked=True)
            .filter(state=SubscriptionState.ON_HOLD, grace_until__lte=now)
            .order_by("pk")
        )
        for sub in subs:
            sub.state = SubscriptionState.BLOCKED
            sub.blocked_reason = DUNNING_NOTE
            sub.updated_at = now
            blocked.append(sub)
        Subscription.objects.bulk_update(
            blocked, ["state", "blocked_reason", "updated_at"]
        )
        SubscriptionEvent.objects.bulk_create(
            SubscriptionEvent(
                subscription=sub,
                kind="blocked_for_nonpayment",
                at=now,
                from_state=SubscriptionState.ON_HOLD,
                to_state=SubscriptionState.BLOCKED,
                note=DUNNING_NOTE,
            )
            for sub in blocked
        )
        if blocked:
            _invalidate([s.pk for s in blocked])
    for sub in blocked:
        _notify(sub, "blocked")
    return len(blocked)


def subscription_retry_payment(
    *, subscription: Subscription, payment_method: str | None = None
) -> int:
    """The store's "update card": pay the subscription's open, failed invoices with
    the new default payment method; returns how many are paid now. On success the
    subscription recovers (ON_HOLD or dunning BLOCKED → ACTIVE)."""
    customer = subscription.customer
    method = payment_method or (
        customer.default_payment_method_id if customer else None
    )
    paid = _pay_failed_invoices(
        failed_unpaid_invoices(subscription_id=subscription.pk), method
    )
    subscription_payment_recovered(subscription_id=subscription.pk, at=timezone.now())
    return paid


# --- The platform plan's own payments (docs/billing.md, "Platform plan payments") ---


PLATFORM_DOWNGRADE_NOTE = "The plan's payment failed and the grace period ended."


def platform_payment_failed(*, platform_subscription_id: int, at: datetime) -> bool:
    """A platform invoice's payment failed: an ACTIVE plan becomes past due for
    PLATFORM_PLAN_GRACE_DAYS and the owners get an email. Once: a plan already past
    due (Stripe's next failed retry, a replayed event) stays as it is."""
    with transaction.atomic():
        sub = PlatformSubscription.objects.select_for_update().get(
            pk=platform_subscription_id
        )
        if sub.status != PlatformSubscriptionStatus.ACTIVE or sub.is_past_due:
            return False
        sub.past_due_since = at
        sub.grace_until = at + timedelta(days=settings.PLATFORM_PLAN_GRACE_DAYS)
        sub.save(update_fields=["past_due_since", "grace_until", "updated_at"])
        log.info("platform plan of %s past due", sub.organization_id)
        _notify_owners(sub.pk, "payment_failed")
    return True


def platform_payment_recovered(*, platform_subscription_id: int, at: datetime) -> bool:
    """Past due → in good standing once no failed platform invoice is unpaid."""
    with transaction.atomic():
        sub = PlatformSubscription.objects.select_for_update().get(
            pk=platform_subscription_id
        )
        if not sub.is_past_due:
            return False
        if failed_unpaid_invoices(platform_subscription_id=sub.pk).exists():
            return False
        sub.past_due_since = None
        sub.grace_until = None
        sub.save(update_fields=["past_due_since", "grace_until", "updated_at"])
        log.info("platform plan of %s paid again at %s", sub.organization_id, at)
    return True


def platform_retry_payment(*, platform_subscription: PlatformSubscription) -> int:
    """After a new card was saved (the plan's Checkout): pay the plan's failed
    invoices with it; returns how many are paid now. A payment clears past due."""
    return _pay_failed_invoices(
        failed_unpaid_invoices(platform_subscription_id=platform_subscription.pk),
        platform_subscription.payment_method_id,
    )


def _pay_failed_invoices(invoices, payment_method: str | None) -> int:
    """Pay each of `invoices` (oldest first) with `payment_method` (None: the
    customer's default); returns how many are paid now."""
    from billing.push import pay

    return sum(
        1
        for invoice in invoices.order_by("pk")
        if pay(invoice, payment_method=payment_method or None)
    )


def platform_dunning_run(*, now: datetime | None = None) -> int:
    """End every past-due platform plan whose grace period is over: the organization
    goes back to the trial plan (no new monetization: no new paid subscriptions, no
    Enable, no Connect), the plan is CANCELLED (no more invoices) and its unpaid
    invoices are voided on Stripe, so nothing is collected for a plan that ended.
    Returns how many plans ended. Rows are claimed with skip_locked, so two runs
    never end one twice."""
    from apimon.services import trial_plan

    now = now or timezone.now()
    ended = []
    with transaction.atomic():
        subs = list(
            PlatformSubscription.objects.select_for_update(skip_locked=True)
            .filter(
                status=PlatformSubscriptionStatus.ACTIVE,
                past_due_since__isnull=False,
                grace_until__lte=now,
            )
            .order_by("pk")
        )
        if subs:
            trial = trial_plan()
        for sub in subs:
            sub.status = PlatformSubscriptionStatus.CANCELLED
            sub.next_invoice_at = None
            sub.downgraded_at = now
            sub.save(
                update_fields=[
                    "status",
                    "next_invoice_at",
                    "downgraded_at",
                    "updated_at",
                ]
            )
            Organization.objects.filter(pk=sub.organization_id).update(plan=trial)
            log.info("%s: %s", sub, PLATFORM_DOWNGRADE_NOTE)
            _notify_owners(sub.pk, "downgraded")
            ended.append(sub)
    _void_unpaid_platform_invoices()
    return len(ended)


def _void_unpaid_platform_invoices() -> int:
    """Void (here and on Stripe) the failed invoices of plans that ended unpaid. An
    invoice a run could not void (Stripe unreachable) is voided by a later run."""
    voided = 0
    owed = failed_unpaid_invoices(
        kind=InvoiceKind.PLATFORM,
        platform_subscription__downgraded_at__isnull=False,
        created_at__lt=F("platform_subscription__downgraded_at"),
    ).order_by("pk")
    for invoice in owed:
        try:
            invoice_void(invoice=invoice)
        except CannotVoid as exc:  # paid on Stripe meanwhile: now recorded as paid
            log.warning("platform invoice %s not voided: %s", invoice, exc)
        except sc.StripeError as exc:
            log.warning("platform invoice %s not voided yet: %s", invoice, exc)
        else:
            voided += 1
    return voided


def _notify_owners(platform_subscription_id: int, kind: str) -> None:
    transaction.on_commit(
        lambda: emails.send_platform_payment_email(platform_subscription_id, kind)
    )


def _notify(sub: Subscription, kind: str) -> None:
    transaction.on_commit(lambda: emails.send_dunning_email(sub.pk, kind))


def _invoice_for_event(event: dict[str, Any]) -> Invoice | None:
    obj = event["data"]["object"]
    account = event.get("account") or ""
    invoice = Invoice.objects.filter(stripe_invoice_id=obj["id"]).first()
    if invoice is None:
        # A push that crashed before saving the id: the metadata names the row.
        local_id = (obj.get("metadata") or {}).get("apimon_invoice_id")
        if local_id and str(local_id).isascii() and str(local_id).isdigit():
            invoice = Invoice.objects.filter(
                pk=int(local_id), stripe_invoice_id__isnull=True
            ).first()
    if invoice is None:
        return None
    expected = "" if invoice.kind == InvoiceKind.PLATFORM else invoice.stripe_account_id
    if account != expected:
        log.warning(
            "event %s for invoice %s came from account %r, not %r",
            event.get("id"),
            invoice.pk,
            account,
            expected,
        )
        return None
    return invoice


def invoice_paid(event: dict[str, Any]) -> bool:
    """`invoice.paid`: the invoice is PAID; its subscription may recover."""
    from billing.push import apply_stripe_invoice

    invoice = _invoice_for_event(event)
    if invoice is None:
        return False
    return apply_stripe_invoice(
        invoice, event["data"]["object"], event_created=event["created"]
    )


def invoice_finalized(event: dict[str, Any]) -> bool:
    """`invoice.finalized`: number, hosted page and PDF."""
    from billing.push import apply_stripe_invoice

    invoice = _invoice_for_event(event)
    if invoice is None:
        return False
    return apply_stripe_invoice(
        invoice, event["data"]["object"], event_created=event["created"]
    )


invoice_voided = invoice_finalized


invoice_marked_uncollectible = invoice_finalized


def invoice_payment_failed(event: dict[str, Any]) -> bool:
    """`invoice.payment_failed`: record the failure; the subscription goes ON_HOLD
    (unless the invoice is paid by now: then this is an old event, ignored)."""
    invoice = _invoice_for_event(event)
    if invoice is None:
        return False
    obj = event["data"]["object"]
    error = (obj.get("last_finalization_error") or {}).get("message") or (
        "The payment was declined."
    )
    return invoice_payment_failed_apply(
        invoice=invoice,
        stripe_invoice=obj,
        message=error,
        at=_ts(event["created"]) or timezone.now(),
        event_created=event["created"],
    )


def issue_final_invoices_for_retired_api(
    *, api_id: int, subscription_ids: list[int]
) -> int:
    """The API was retired: its subscriptions are CANCELLED (with `cancelled_at`);
    make them due now, so the billing job writes their final invoices (usage to
    date). Free ones have nothing to invoice."""
    return (
        Subscription.objects.filter(
            pk__in=subscription_ids,
            api_id=api_id,
            state=SubscriptionState.CANCELLED,
            cancelled_at__isnull=False,
            tier_version__pricing_model__in=[
                m for m in PricingModel if m != PricingModel.FREE
            ],
        )
        .filter(
            Q(next_invoice_at__isnull=True) | Q(next_invoice_at__gt=F("cancelled_at"))
        )
        .update(next_invoice_at=F("cancelled_at"))
    )


def invoice_repush(*, invoice: Invoice) -> Invoice:
    """Push again (after a failure, or to refresh it from Stripe)."""
    from billing.push import invoice_push

    if invoice.status == InvoiceStatus.PUSH_FAILED:
        Invoice.objects.filter(pk=invoice.pk).update(status=InvoiceStatus.DRAFT)
    return invoice_push(invoice_id=invoice.pk)


class CannotVoid(Exception):
    pass


def invoice_void(*, invoice: Invoice) -> Invoice:
    """Void an invoice locally and on Stripe. A paid invoice cannot be voided (it
    would need a refund). Voiding a failed invoice may let its subscription recover."""
    from billing.push import apply_stripe_invoice, key

    if invoice.status == InvoiceStatus.PAID:
        raise CannotVoid(f"{invoice} is paid: refund it in Stripe instead.")
    if invoice.status == InvoiceStatus.VOID:
        return invoice
    client = sc.get_client()
    account = (
        None if invoice.kind == InvoiceKind.PLATFORM else invoice.stripe_account_id
    )
    if invoice.stripe_invoice_id:
        current = client.v1.invoices.retrieve(
            invoice.stripe_invoice_id, options=sc.request_options(account=account)
        ).to_dict()
        if current["status"] == "draft":
            client.v1.invoices.delete(
                invoice.stripe_invoice_id, options=sc.request_options(account=account)
            )
        elif current["status"] in ("open", "uncollectible"):
            current = client.v1.invoices.void_invoice(
                invoice.stripe_invoice_id,
                options=sc.request_options(
                    account=account,
                    idempotency_key=key(invoice, "void"),
                ),
            ).to_dict()
            apply_stripe_invoice(invoice, current)
        elif current["status"] == "paid":
            apply_stripe_invoice(invoice, current)
            raise CannotVoid(f"{invoice} is paid on Stripe: refund it there instead.")
    now = timezone.now()
    Invoice.objects.filter(pk=invoice.pk).exclude(status=InvoiceStatus.PAID).update(
        status=InvoiceStatus.VOID, voided_at=now
    )
    invoice.refresh_from_db()
    invoice_settled(invoice=invoice, at=now)
    return invoice


@dataclass(frozen=True)
class Rerate:
    invoice: Invoice | None
    message: str


def subscription_rerate(
    *, subscription: Subscription, now: datetime | None = None
) -> Rerate:
    """Rate the subscription's last closed period again from today's usage rows and,
    if the amount differs from what was billed, write a CORRECTION invoice: a
    reversal of the usage billed for that period and the usage rated now. The
    invoices already written are never edited."""
    now = now or timezone.now()
    latest = (
        Invoice.objects.filter(
            subscription=subscription,
            kind__in=[InvoiceKind.RENEWAL, InvoiceKind.FINAL, InvoiceKind.CORRECTION],
            superseded_by__isnull=True,
        )
        .exclude(status=InvoiceStatus.VOID)
        .exclude(rating={})
        .order_by("-period_start", "-pk")
        .first()
    )
    if latest is None:
        return Rerate(None, "No closed period to re-rate.")
    segments = latest.rating.get("segments") or []
    if not segments:
        return Rerate(None, "That invoice billed no usage.")
    period_start, period_end = latest.period_start, latest.period_end
    billed = sum(
        line.amount_minor
        for invoice in subscription.invoices.exclude(status=InvoiceStatus.VOID)
        for line in invoice.lines.all()
        if line.kind in engine.USAGE_KINDS
        and line.period_start is not None
        and period_start <= line.period_start < period_end
    )
    # Today's usage, split as before (same segments and versions).
    ranges = [
        (
            subscription.pk,
            datetime.fromisoformat(s["start"]),
            datetime.fromisoformat(s["end"]),
        )
        for s in segments
    ]
    from publisher.models import TierVersion

    versions = {
        v.pk: v
        for v in TierVersion.objects.filter(
            pk__in={s["tier_version"] for s in segments}
        ).prefetch_related("bands")
    }
    whole = (subscription.pk, ranges[0][1], ranges[-1][2])
    total_now = engine.usage_for_ranges([whole])[whole]
    new_lines: list[engine.DraftLine] = []
    new_segments = []
    for seg, rng in zip(segments, ranges, strict=True):
        # Before an upgrade: what was split off then (the store's snapshot); the
        # rest of the period's count goes to the last version.
        quantity = seg["quantity"]
        if seg is segments[-1]:
            quantity = max(0, total_now - sum(s["quantity"] for s in segments[:-1]))
        rated = usage_lines(
            versions[seg["tier_version"]].pricing(),
            quantity,
            period_start=rng[1],
            period_end=rng[2],
        )
        new_lines += [
            engine.DraftLine(x, seg["tier_version"]) for x in chargeable_lines(rated)
        ]
        new_segments.append({**seg, "quantity": quantity})
    new_total = sum(d.line.amount_minor for d in new_lines)
    if new_total == billed:
        return Rerate(None, f"{latest} is right: nothing to correct.")
    currency = latest.currency
    from billing.currencies import from_minor

    reversal = Line(
        kind="REVERSAL",  # type: ignore[arg-type]
        description=f"Reversal of the usage billed for this period ({latest.number})",
        quantity=1,
        unit_price=from_minor(-billed, currency),
        amount_minor=-billed,
        currency=currency,
        period_start=period_start,
        period_end=period_end,
    )
    draft = engine.Draft(
        kind=InvoiceKind.CORRECTION,
        period_start=period_start,
        period_end=period_end,
        lines=[engine.DraftLine(reversal, latest.tier_version_id), *new_lines],
        tier_version_id=latest.tier_version_id,
        rating={
            "segments": new_segments,
            "quantity": sum(s["quantity"] for s in new_segments),
        },
        supersedes_id=latest.pk,
    )
    with transaction.atomic():
        try:
            with transaction.atomic():
                ids = engine.write_single(subscription, [draft], now=now)
        except IntegrityError:
            return Rerate(None, f"{latest} was corrected meanwhile.")
    invoice = Invoice.objects.get(pk=ids[0])
    return Rerate(invoice, f"{invoice} corrects {latest}.")


@dataclass(frozen=True)
class TickResult:
    run: engine.RunResult
    pushed: int


def billing_tick(*, now: datetime | None = None) -> TickResult:
    """What beat runs every minute: close due periods and write their invoices,
    invoice the platform plans that are due, and push invoices that are waiting (a
    lost task, a reconnected account)."""
    now = now or timezone.now()
    result = engine.billing_run(now=now)
    result.add(engine.platform_billing_run(now=now))
    pushed = push_sweep(now=now)
    return TickResult(run=result, pushed=pushed)


def push_sweep(*, now: datetime, stale: timedelta = timedelta(minutes=5)) -> int:
    """Enqueue the push of invoices written a while ago and still not on Stripe
    (the task was lost), and of those waiting for an account that can take payments
    again."""
    from billing import tasks

    ready_orgs = StripeConnection.objects.filter(
        disconnected_at__isnull=True, billing_paused=False
    ).values("organization_id")
    ids = list(
        Invoice.objects.filter(
            Q(status=InvoiceStatus.DRAFT, created_at__lte=now - stale)
            | Q(status=InvoiceStatus.WAITING, organization_id__in=ready_orgs)
            | Q(status=InvoiceStatus.WAITING, kind=InvoiceKind.PLATFORM)
        ).values_list("pk", flat=True)[:1000]
    )
    for pk in ids:
        tasks.push_invoice.delay(pk)
    return len(ids)
