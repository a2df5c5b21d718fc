"""The operator's view of Stripe connections, platform subscriptions, the catalog
and webhook events and, below "Invoices", of invoices: filters, search,
the lines read-only, and the actions that go through the billing services (push
again, void, re-rate the subscription). Invoices are never edited: a ledger.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone

from apimon.payment_errors import PaymentProviderError
from billing import catalog, reconcile, services, webhooks
from billing.catalog import CatalogError
from billing.models import (
    CatalogDrift,
    CatalogObject,
    Invoice,
    InvoiceLine,
    InvoiceSequence,
    OAuthState,
    PlatformSubscription,
    StripeConnection,
    WebhookEvent,
)
from pricing.currencies import format_money


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
        for connection in queryset.filter(disconnected_at__isnull=True):
            try:
                result = reconcile.catalog_reconcile(
                    organization=connection.organization
                )
            except PaymentProviderError as exc:
                self._stripe_failed(request, connection, exc)
                continue
            self.message_user(
                request,
                f"{connection.organization}: {result.checked} checked, "
                f"{result.open_drift} open drift.",
            )

    @admin.action(description="Sync the Stripe catalog now")
    def sync_now(self, request, queryset):
        for connection in queryset.filter(
            disconnected_at__isnull=True, monetization_enabled=True
        ):
            try:
                result = catalog.catalog_sync(organization=connection.organization)
            except (CatalogError, PaymentProviderError) as exc:
                self._stripe_failed(request, connection, exc)
                continue
            self.message_user(
                request,
                f"{connection.organization}: {len(result.created)} created, "
                f"{len(result.archived)} archived. {result.not_chargeable_note}".strip(),
            )

    def _stripe_failed(self, request, connection, exc: Exception) -> None:
        message = getattr(exc, "user_message", None) or exc
        self.message_user(
            request, f"{connection.organization}: {message}", messages.ERROR
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
        "past_due_since",
        "grace_until",
    ]
    list_filter = [
        "status",
        "plan",
        "country",
        ("past_due_since", admin.EmptyFieldListFilter),
    ]
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
        "charge_label",
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
        for drift in queryset.filter(resolved_at__isnull=True):
            try:
                done = reconcile.drift_repair(drift=drift, actor=request.user.email)
            except (reconcile.RepairError, PaymentProviderError) as exc:
                self.message_user(request, f"{drift}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{drift}: {done}.")

    @admin.action(description="Mark resolved (accept Stripe as it is)")
    def mark_resolved(self, request, queryset):
        count = queryset.filter(resolved_at__isnull=True).update(
            resolved_at=timezone.now(),
            resolution=f"Marked resolved by {request.user.email}",
        )
        self.message_user(request, f"{count} drift record(s) resolved.")


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    # What the operator looks for first (did it work?) before the long ids.
    list_display = [
        "type",
        "status",
        "attempts",
        "received_at",
        "processed_at",
        "event_id",
        "account",
    ]
    list_filter = ["status", "type", "livemode"]
    search_fields = ["event_id", "type", "account"]
    readonly_fields = [f.name for f in WebhookEvent._meta.fields]
    actions = ["replay"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Replay (run the handlers again)")
    def replay(self, request, queryset):
        for event in queryset:
            try:
                result = webhooks.webhook_event_replay(event=event)
            except webhooks.HandlerFailed as exc:
                self.message_user(request, f"{event}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{event}: {result.lower()}.")


# --- Invoices (the billing engine) --------------------------------------------


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = [
        "position",
        "kind",
        "description",
        "quantity",
        "unit_price",
        "amount_minor",
        "period_start",
        "period_end",
        "tier_version",
        "stripe_invoice_item_id",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = [
        "number",
        "organization",
        "kind",
        "status",
        "total_display",
        "fee_display",
        "period_start",
        "created_at",
        "stripe_invoice_id",
        "push_attempts",
        "last_push_error",
    ]
    list_filter = ["status", "kind", "currency", "organization"]
    search_fields = [
        "number",
        "stripe_invoice_id",
        "stripe_number",
        "stripe_customer_id",
    ]
    date_hierarchy = "created_at"
    list_select_related = ["organization"]
    inlines = [InvoiceLineInline]
    actions = ["repush", "void", "rerate"]
    readonly_fields = [f.name for f in Invoice._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Total")
    def total_display(self, invoice: Invoice) -> str:
        return format_money(invoice.total_minor, invoice.currency)

    @admin.display(description="Platform fee")
    def fee_display(self, invoice: Invoice) -> str:
        return format_money(invoice.application_fee_minor, invoice.currency)

    @admin.action(description="Push the selected invoices to Stripe again")
    def repush(self, request, queryset):
        for invoice in queryset:
            try:
                result = services.invoice_repush(invoice=invoice)
            except PaymentProviderError as error:
                self.message_user(request, f"{invoice}: {error}", messages.ERROR)
                continue
            level = messages.WARNING if result.last_push_error else messages.SUCCESS
            note = f" ({result.last_push_error})" if result.last_push_error else ""
            self.message_user(
                request, f"{invoice}: {result.get_status_display()}{note}", level
            )

    @admin.action(description="Void the selected invoices (here and on Stripe)")
    def void(self, request, queryset):
        for invoice in queryset:
            try:
                services.invoice_void(invoice=invoice)
            except (services.CannotVoid, PaymentProviderError) as error:
                self.message_user(request, f"{invoice}: {error}", messages.ERROR)
                continue
            self.message_user(request, f"{invoice} is void.")

    @admin.action(description="Re-rate the subscription (writes a correction)")
    def rerate(self, request, queryset):
        seen = set()
        for invoice in queryset.exclude(subscription=None):
            if invoice.subscription_id in seen:
                continue
            seen.add(invoice.subscription_id)
            outcome = services.subscription_rerate(subscription=invoice.subscription)
            level = messages.SUCCESS if outcome.invoice else messages.INFO
            self.message_user(
                request, f"{invoice.subscription}: {outcome.message}", level
            )


@admin.register(InvoiceSequence)
class InvoiceSequenceAdmin(admin.ModelAdmin):
    list_display = ["key", "last_number"]
    readonly_fields = ["key", "last_number"]
    search_fields = ["key"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
