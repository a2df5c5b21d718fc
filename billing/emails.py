"""Billing emails. Subject / text / HTML triples in templates/emails/.

- Dunning emails to subscribers: a payment failed (still served until the end of the
  grace period), and the subscription is blocked.
- Emails to an organization's owners (`email_owners`): Stripe disconnected, and the
  platform plan's own payments (its payment failed; the plan ended unpaid)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.urls import reverse

from apimon.emails import email_send
from apimon.jobs import job_failure_record
from apimon.models import Membership, Organization, Role
from billing import selectors
from store.models import Subscription

log = logging.getLogger(__name__)

EMAIL_JOB = "billing emails"
TEMPLATES = {"payment_failed": "billing_payment_failed", "blocked": "billing_blocked"}


def send_dunning_email(subscription_id: int, kind: str) -> None:
    sub = (
        Subscription.objects.select_related(
            "subscriber", "api", "tier", "application", "organization"
        )
        .filter(pk=subscription_id)
        .first()
    )
    if sub is None:
        return
    name = TEMPLATES[kind]
    slug = sub.organization.slug
    context = {
        "subscription": sub,
        "organization": sub.organization,
        "invoices_url": f"{settings.SITE_URL}/t/{slug}/store/invoices/",
    }
    try:
        email_send(template=name, context=context, recipients=[sub.subscriber.email])
    except Exception as exc:
        # The state change stands; a lost email must not undo it. Recorded for the
        # operator (apimon.jobs); the subscriber's pages show the state.
        job_failure_record(
            job=EMAIL_JOB,
            ref=f"{kind} email, subscription {sub.pk}",
            organization_id=sub.organization_id,
            error=exc,
        )


def email_owners(organization: Organization, template: str, context: dict) -> None:
    """One email to every owner of `organization`; `link` in the context is the
    organization's Monetization page."""
    owners = list(
        Membership.objects.filter(
            organization=organization, role=Role.OWNER
        ).values_list("user__email", flat=True)
    )
    if not owners:
        return
    context = {
        **context,
        "organization": organization,
        "link": settings.SITE_URL
        + reverse("monetization:status", args=[organization.slug]),
    }
    email_send(template=template, context=context, recipients=owners)


def send_platform_payment_email(platform_subscription_id: int, kind: str) -> None:
    """To the owners: the platform plan's payment failed ("payment_failed"), or the
    plan ended because it stayed unpaid ("downgraded")."""
    notice = selectors.platform_payment_notice_for(platform_subscription_id)
    if notice is None:
        return  # paid (or upgraded again) before the email went out
    if (kind == "downgraded") != notice.downgraded:
        return
    try:
        email_owners(
            notice.organization,
            f"platform_{kind}",
            {
                "notice": notice,
                "update_url": settings.SITE_URL + notice.fix_url,
            },
        )
    except Exception as exc:
        # The state change stands; a lost email must not undo it.
        job_failure_record(
            job=EMAIL_JOB,
            ref=f"platform {kind} email, platform subscription "
            f"{platform_subscription_id}",
            organization_id=notice.organization.pk,
            error=exc,
        )
