from django.contrib import admin, messages

from apimon import stripe_client as sc
from billing.models import (
    CatalogDrift,
    CatalogObject,
    OAuthState,
    PlatformSubscription,
    StripeConnection,
    WebhookEvent,
)


@admin.register(StripeConnection)
class StripeConnectionAdmin(admin.ModelAdmin):
    list_display = [
        "organization",
        "account_id",
        "country",
        "charges_enabled",
        "payouts_enabled",
        "monetization_enabled",
        "billing_paused",
        "connected_at",
        "disconnected_at",
    ]
    list_filter = [
        "monetization_enabled",
        "billing_paused",
        "charges_enabled",
        "livemode",
        ("disconnected_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["organization__name", "organization__slug", "account_id"]
    readonly_fields = ["connected_at", "connected_by", "account_data"]
    actions = ["reconcile_now", "sync_now"]

    @admin.action(description="Check the Stripe catalog now (reconcile)")
    def reconcile_now(self, request, queryset):
        from billing.reconcile import catalog_reconcile

        for connection in queryset.filter(disconnected_at__isnull=True):
            result = catalog_reconcile(organization=connection.organization)
            self.message_user(
                request,
                f"{connection.organization}: {result.checked} checked, "
                f"{result.open_drift} open drift.",
            )

    @admin.action(description="Sync the Stripe catalog now")
    def sync_now(self, request, queryset):
        from billing.catalog import catalog_sync

        for connection in queryset.filter(
            disconnected_at__isnull=True, monetization_enabled=True
        ):
            result = catalog_sync(organization=connection.organization)
            self.message_user(
                request,
                f"{connection.organization}: {len(result.created)} created, "
                f"{len(result.archived)} archived.",
            )


@admin.register(PlatformSubscription)
class PlatformSubscriptionAdmin(admin.ModelAdmin):
    list_display = [
        "organization",
        "plan",
        "status",
        "billing_name",
        "email",
        "country",
        "started_at",
        "next_invoice_at",
    ]
    list_filter = ["status", "plan", "country"]
    search_fields = [
        "organization__name",
        "billing_name",
        "email",
        "customer_id",
    ]
    readonly_fields = [
        "customer_id",
        "payment_method_id",
        "checkout_session_id",
        "completed_session_id",
        "checkout_attempts",
        "created_at",
        "updated_at",
    ]


@admin.register(OAuthState)
class OAuthStateAdmin(admin.ModelAdmin):
    list_display = ["organization", "user", "created_at", "expires_at", "used_at"]
    list_filter = [("used_at", admin.EmptyFieldListFilter)]
    search_fields = ["organization__name", "user__email"]
    readonly_fields = [f.name for f in OAuthState._meta.fields]

    def has_add_permission(self, request):
        return False


class DriftInline(admin.TabularInline):
    model = CatalogDrift
    extra = 0
    fields = ["kind", "detail", "detected_at", "resolved_at", "resolution"]
    readonly_fields = fields
    can_delete = False


@admin.register(CatalogObject)
class CatalogObjectAdmin(admin.ModelAdmin):
    list_display = [
        "stripe_id",
        "kind",
        "organization",
        "account_id",
        "api",
        "tier_version",
        "active",
        "retired_at",
        "last_checked_at",
    ]
    list_filter = [
        "kind",
        "active",
        ("retired_at", admin.EmptyFieldListFilter),
        "organization",
    ]
    search_fields = ["stripe_id", "account_id", "organization__name", "api__name"]
    readonly_fields = ["synced_data", "fingerprint", "created_at", "updated_at"]
    inlines = [DriftInline]


class DriftOpenFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", "Open"), ("no", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(CatalogDrift)
class CatalogDriftAdmin(admin.ModelAdmin):
    list_display = [
        "catalog_object",
        "kind",
        "organization",
        "detected_at",
        "last_seen_at",
        "resolved_at",
    ]
    list_filter = [DriftOpenFilter, "kind", "organization"]
    search_fields = [
        "catalog_object__stripe_id",
        "organization__name",
        "detail",
    ]
    readonly_fields = ["detected_at", "last_seen_at"]
    actions = ["repair", "mark_resolved"]

    @admin.action(description="Repair in Stripe (re-activate, restore or re-create)")
    def repair(self, request, queryset):
        from billing.reconcile import RepairError, drift_repair

        for drift in queryset.filter(resolved_at__isnull=True):
            try:
                done = drift_repair(drift=drift, actor=request.user.email)
            except (RepairError, sc.StripeError) as exc:
                self.message_user(request, f"{drift}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{drift}: {done}.")

    @admin.action(description="Mark resolved (accept Stripe as it is)")
    def mark_resolved(self, request, queryset):
        from django.utils import timezone

        count = queryset.filter(resolved_at__isnull=True).update(
            resolved_at=timezone.now(),
            resolution=f"Marked resolved by {request.user.email}",
        )
        self.message_user(request, f"{count} drift record(s) resolved.")


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = [
        "event_id",
        "type",
        "account",
        "status",
        "attempts",
        "received_at",
        "processed_at",
    ]
    list_filter = ["status", "type", "livemode"]
    search_fields = ["event_id", "type", "account"]
    readonly_fields = [f.name for f in WebhookEvent._meta.fields]
    actions = ["replay"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Replay (run the handlers again)")
    def replay(self, request, queryset):
        from billing.webhooks import HandlerFailed, webhook_event_replay

        for event in queryset:
            try:
                result = webhook_event_replay(event=event)
            except HandlerFailed as exc:
                self.message_user(request, f"{event}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{event}: {result.lower()}.")
