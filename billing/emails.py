"""Dunning emails to subscribers: a payment failed (still served until the end of
the grace period), and the subscription is blocked. Subject / text / HTML triples in
templates/emails/."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string

from store.models import Subscription

log = logging.getLogger(__name__)

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
        send_mail(
            subject=render_to_string(f"emails/{name}_subject.txt", context).strip(),
            message=render_to_string(f"emails/{name}_body.txt", context),
            html_message=render_to_string(f"emails/{name}_body.html", context),
            from_email=None,
            recipient_list=[sub.subscriber.email],
        )
    except Exception:
        # The state change stands; a lost email must not undo it.
        log.exception("dunning email %s to subscription %s failed", kind, sub.pk)
