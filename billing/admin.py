"""The operator's view of invoices: filters, search, the lines read-only, and the
actions that go through the billing services (push again, void, re-rate the
subscription). Invoices are never edited here: they are a ledger."""

from __future__ import annotations

from django.contrib import admin, messages

from apimon import stripe_client as sc
from billing import services
from billing.models import Invoice, InvoiceLine, InvoiceSequence


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
        from billing.currencies import format_money

        return format_money(invoice.total_minor, invoice.currency)

    @admin.display(description="Platform fee")
    def fee_display(self, invoice: Invoice) -> str:
        from billing.currencies import format_money

        return format_money(invoice.application_fee_minor, invoice.currency)

    @admin.action(description="Push the selected invoices to Stripe again")
    def repush(self, request, queryset):
        for invoice in queryset:
            try:
                result = services.invoice_repush(invoice=invoice)
            except sc.StripeError as error:
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
            except (services.CannotVoid, sc.StripeError) as error:
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
