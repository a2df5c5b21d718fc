"""Writes on tenants, memberships and invitations. Views, admin and commands call these."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from apimon.emails import email_send
from apimon.models import (
    Invitation,
    Membership,
    Organization,
    PlatformPlan,
    RestrictedAccess,
    Role,
    User,
    hash_token,
)

INVITATION_LIFETIME = timedelta(days=7)
# Slugs that would shadow apimon's own URL words if an org used them.
RESERVED_SLUGS = {
    "admin",
    "accounts",
    "api",
    "static",
    "t",
    "gateway",
    "new",
    "billing",
}


def trial_plan() -> PlatformPlan:
    return PlatformPlan.objects.get(is_trial=True)


def unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "org"
    if base in RESERVED_SLUGS:
        base = f"{base}-org"
    slug, n = base, 2
    while Organization.objects.filter(slug=slug).exists():
        slug = f"{base}-{n}"
        n += 1
    return slug


def organization_create(*, user: User, name: str) -> Organization:
    """A new tenant on the trial plan, with `user` as its owner."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the organization a name."})
    for _attempt in range(5):
        try:
            with transaction.atomic():
                org = Organization.objects.create(
                    name=name, slug=unique_slug(name), plan=trial_plan()
                )
                Membership.objects.create(user=user, organization=org, role=Role.OWNER)
                return org
        except IntegrityError:
            continue  # another request took the slug between the check and the insert
    raise ValidationError({"name": "Could not find a free address for this name."})


def invitation_create(
    *, organization: Organization, email: str, role: str, invited_by: User
) -> tuple[Invitation, str]:
    """Store a hashed single-use token and email the link. Returns the raw token once.

    Owners and publishers are invited from the Members page; a subscriber invitation
    (restricted_access_invite) makes its holder a subscriber approved for the
    restricted APIs."""
    email = email.strip().lower()
    if role not in Role.values:
        raise ValidationError({"role": "Invite as owner or publisher."})
    existing = Membership.objects.filter(organization=organization, user__email=email)
    if role == Role.SUBSCRIBER and existing.exists():
        raise ValidationError({"email": "This person is already a member."})
    if existing.exclude(role=Role.SUBSCRIBER).exists():
        raise ValidationError({"email": "This person is already a member."})
    token = Invitation.new_token()
    invitation = Invitation.objects.create(
        organization=organization,
        email=email,
        role=role,
        token_hash=hash_token(token),
        invited_by=invited_by,
        expires_at=timezone.now() + INVITATION_LIFETIME,
    )
    link = settings.SITE_URL + reverse("invitation-accept", args=[token])
    context = {"invitation": invitation, "link": link, "organization": organization}
    email_send(template="invitation", context=context, recipients=[email])
    return invitation, token


def invitation_for_token(token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("organization", "invited_by")
        .filter(token_hash=hash_token(token))
        .first()
    )


def invitation_accept(*, token: str, user: User) -> Membership:
    """Use the invitation once: the user becomes a member with the invited role.

    A subscriber of the same organization is promoted; an existing owner/publisher
    keeps the higher of the two roles. A subscriber invitation approves its holder
    for the restricted APIs.
    """
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update()
            .filter(token_hash=hash_token(token))
            .first()
        )
        if invitation is None:
            raise ValidationError("This invitation link is not valid.")
        if invitation.status != "pending":
            raise ValidationError(f"This invitation is {invitation.status}.")
        membership, created = Membership.objects.get_or_create(
            user=user,
            organization=invitation.organization,
            defaults={"role": invitation.role},
        )
        if not created and _RANK[invitation.role] > _RANK[membership.role]:
            membership.role = invitation.role
            membership.save(update_fields=["role"])
        if invitation.role == Role.SUBSCRIBER and membership.role == Role.SUBSCRIBER:
            _set_access(membership, approve=True, actor=invitation.invited_by)
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        return membership


def invitation_revoke(*, invitation: Invitation) -> None:
    if invitation.status == "pending":
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])


_RANK = {Role.SUBSCRIBER: 0, Role.PUBLISHER: 1, Role.OWNER: 2}


def membership_join_store(*, organization: Organization, user: User) -> Membership:
    """Anyone signed in may become a subscriber of an organization's store: the
    PUBLIC APIs only, until an owner or publisher approves them for the restricted
    ones (membership_request_access, membership_decide_access)."""
    membership, _ = Membership.objects.get_or_create(
        user=user, organization=organization, defaults={"role": Role.SUBSCRIBER}
    )
    return membership


def membership_change_role(*, membership: Membership, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": "Unknown role."})
    with transaction.atomic():
        current = _lock_membership(membership)
        if current.role == Role.OWNER and role != Role.OWNER:
            _ensure_another_owner(current)
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def membership_remove(*, membership: Membership) -> None:
    with transaction.atomic():
        current = _lock_membership(membership)
        if current.role == Role.OWNER:
            _ensure_another_owner(current)
        membership.delete()


def _lock_membership(membership: Membership) -> Membership:
    """Lock the membership's organization, then read the membership afresh.

    Every change of an organization's owners takes the organization's row first and
    only then reads the owners, so two owners demoting each other at once queue
    one behind the other (the second sees the first's change) instead of each
    locking the other's membership and deadlocking."""
    list(
        Organization.objects.select_for_update()
        .filter(pk=membership.organization_id)
        .values_list("pk", flat=True)
    )
    current = Membership.objects.filter(pk=membership.pk).first()
    if current is None:
        raise ValidationError("This person is no longer a member.")
    return current


def _ensure_another_owner(membership: Membership) -> None:
    """Under `_lock_membership`'s lock: refuse to lose the last owner."""
    owners = Membership.objects.filter(
        organization_id=membership.organization_id, role=Role.OWNER
    )
    if not owners.exclude(pk=membership.pk).exists():
        raise ValidationError("An organization needs at least one owner.")


# -- access to the restricted APIs ---------------------------------------------------


def membership_request_access(*, membership: Membership) -> Membership:
    """A subscriber asks to see the organization's restricted APIs; its owners and
    publishers are emailed once. A declined request is not asked again from the
    store (the publisher may still approve it in the console)."""
    with transaction.atomic():
        membership = Membership.objects.select_for_update().get(pk=membership.pk)
        if membership.sees_restricted_apis:
            return membership
        if membership.restricted_access == RestrictedAccess.REJECTED:
            raise ValidationError(
                "Your request was declined. Contact the publisher if you think this "
                "is a mistake."
            )
        if membership.restricted_access == RestrictedAccess.REQUESTED:
            return membership
        membership.restricted_access = RestrictedAccess.REQUESTED
        membership.access_requested_at = timezone.now()
        membership.save(update_fields=["restricted_access", "access_requested_at"])
        transaction.on_commit(lambda: _email_access_requested(membership))
    return membership


def membership_decide_access(
    *, membership: Membership, approve: bool, actor: User
) -> Membership:
    """Approve a subscriber for the restricted APIs, or decline (or take back) their
    access. Subscriptions they already have are not touched: only new ones need it."""
    with transaction.atomic():
        membership = Membership.objects.select_for_update().get(pk=membership.pk)
        if membership.role != Role.SUBSCRIBER:
            raise ValidationError("Owners and publishers see every API already.")
        _set_access(membership, approve=approve, actor=actor)
    return membership


def restricted_access_invite(
    *, organization: Organization, email: str, invited_by: User
) -> str:
    """Give `email` access to the restricted APIs: a subscriber already in the store
    is approved at once ("approved"); anyone else is sent a subscriber invitation
    that approves them when accepted ("invited")."""
    email = email.strip().lower()
    existing = (
        Membership.objects.filter(organization=organization, user__email=email)
        .select_related("user")
        .first()
    )
    if existing is None:
        invitation_create(
            organization=organization,
            email=email,
            role=Role.SUBSCRIBER,
            invited_by=invited_by,
        )
        return "invited"
    if existing.can_publish:
        raise ValidationError({"email": "Owners and publishers see every API already."})
    membership_decide_access(membership=existing, approve=True, actor=invited_by)
    return "approved"


def _set_access(membership: Membership, *, approve: bool, actor: User | None) -> None:
    status = RestrictedAccess.APPROVED if approve else RestrictedAccess.REJECTED
    if membership.restricted_access == status:
        return
    membership.restricted_access = status
    membership.access_decided_at = timezone.now()
    membership.access_decided_by = actor
    membership.save(
        update_fields=["restricted_access", "access_decided_at", "access_decided_by"]
    )
    if approve:
        transaction.on_commit(lambda: _email_access_approved(membership))


def _email_access_requested(membership: Membership) -> None:
    organization = membership.organization
    deciders = Membership.objects.filter(
        organization=organization, role__in=[Role.OWNER, Role.PUBLISHER]
    ).values_list("user__email", flat=True)
    link = settings.SITE_URL + reverse(
        "publisher:access-list", args=[organization.slug]
    )
    context = {"membership": membership, "organization": organization, "link": link}
    email_send(
        template="access_requested", context=context, recipients=sorted(deciders)
    )


def _email_access_approved(membership: Membership) -> None:
    organization = membership.organization
    link = settings.SITE_URL + reverse("store:home", args=[organization.slug])
    context = {"organization": organization, "link": link}
    email_send(
        template="access_approved",
        context=context,
        recipients=[membership.user.email],
    )
