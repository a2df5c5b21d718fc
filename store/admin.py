"""The operator's view of applications, keys, customers and subscriptions. Keys show
their prefix and hash only (apimon never has the key). Subscription state changes go
through the services; the rest is read-only history."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from store import services
from store.models import (
    ApiKey,
    Application,
    StripeCustomer,
    Subscription,
    SubscriptionEvent,
)

OPERATOR_BLOCK_REASON = (
    "Blocked by the platform operator. Contact the publisher for details."
)


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ApiKeyInline(ReadOnlyMixin, admin.TabularInline):
    model = ApiKey
    fk_name = "application"
    extra = 0
    can_delete = False
    fields = [
        "prefix",
        "name",
        "created_at",
        "last_used_at",
        "revoked_at",
        "expires_at",
    ]
    readonly_fields = fields


@admin.register(Application)
class ApplicationAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "organization", "created_at", "deleted_at"]
    list_filter = ["organization", ("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "owner__email", "organization__name", "organization__slug"]
    list_select_related = ["owner", "organization"]
    readonly_fields = [
        "organization",
        "owner",
        "created_at",
        "updated_at",
        "deleted_at",
    ]
    fields = ["organization", "owner", "name", "description", *readonly_fields[2:]]
    inlines = [ApiKeyInline]

    def has_add_permission(self, request) -> bool:
        return False  # an application belongs to a subscriber's store flow


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "prefix",
        "name",
        "application",
        "organization",
        "created_at",
        "last_used_at",
        "revoked_at",
        "expires_at",
    ]
    list_filter = [
        "organization",
        ("revoked_at", admin.EmptyFieldListFilter),
        ("expires_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["prefix", "key_hash", "name", "application__name"]
    list_select_related = ["application", "organization"]
    fields = [
        "organization",
        "application",
        "name",
        "prefix",
        "key_hash",
        "created_at",
        "last_used_at",
        "revoked_at",
        "expires_at",
        "replaced_by",
    ]
    readonly_fields = fields
    actions = ["revoke"]

    @admin.action(description="Revoke selected keys (they stop working at once)")
    def revoke(self, request, queryset):
        for key in queryset:
            services.api_key_revoke(key=key, actor=request.user)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


@admin.register(StripeCustomer)
class StripeCustomerAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "stripe_customer_id",
        "user",
        "organization",
        "stripe_account_id",
        "card_brand",
        "card_last4",
        "livemode",
    ]
    list_filter = ["organization", "livemode"]
    search_fields = ["stripe_customer_id", "stripe_account_id", "user__email"]
    list_select_related = ["user", "organization"]


class SubscriptionEventInline(ReadOnlyMixin, admin.TabularInline):
    model = SubscriptionEvent
    extra = 0
    can_delete = False
    fields = [
        "at",
        "kind",
        "from_state",
        "to_state",
        "from_tier_version",
        "to_tier_version",
        "actor",
        "note",
        "data",
    ]
    readonly_fields = fields
    ordering = ["-at", "-pk"]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "subscriber",
        "application",
        "api",
        "tier",
        "state",
        "organization",
        "current_period_end",
        "next_invoice_at",
    ]
    list_filter = ["state", "organization", "api", "tier", "cancel_at_period_end"]
    search_fields = [
        "subscriber__email",
        "application__name",
        "api__name",
        "tier__name",
        "checkout_session_id",
        "customer__stripe_customer_id",
    ]
    list_select_related = ["subscriber", "application", "api", "tier", "organization"]
    readonly_fields = [f.name for f in Subscription._meta.fields]
    inlines = [SubscriptionEventInline]
    actions = ["block", "unblock"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # history and invoices point at it; cancel instead

    @admin.action(description="Block selected subscriptions")
    def block(self, request, queryset):
        self._run(request, queryset, "blocked", services.subscription_block)

    @admin.action(description="Unblock selected subscriptions")
    def unblock(self, request, queryset):
        self._run(request, queryset, "unblocked", services.subscription_unblock)

    def _run(self, request, queryset, done_text, service) -> None:
        done = 0
        for subscription in queryset:
            kwargs = {"subscription": subscription, "actor": request.user}
            if service is services.subscription_block:
                kwargs["reason"] = OPERATOR_BLOCK_REASON
            try:
                service(**kwargs)
                done += 1
            except ValidationError as exc:
                self.message_user(
                    request,
                    f"#{subscription.pk}: {' '.join(exc.messages)}",
                    messages.WARNING,
                )
        if done:
            self.message_user(request, f"{done} subscription(s) {done_text}.")
