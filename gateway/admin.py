from django.contrib import admin, messages

from gateway.models import FlushBatch, QuotaAlert, UsageRecord
from gateway.services import usage_flush


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ["subscription", "organization", "meter", "hour", "count"]
    list_filter = ["organization", "meter", "hour"]
    search_fields = [
        "subscription__application__name",
        "subscription__subscriber__email",
        "subscription__api__name",
    ]
    date_hierarchy = "hour"
    list_select_related = [
        "subscription__application",
        "subscription__api",
        "subscription__tier",
        "organization",
    ]
    raw_id_fields = ["subscription"]
    # Rows are the meter's ledger: written by the flush only.
    readonly_fields = ["organization", "subscription", "meter", "hour", "count"]

    def has_add_permission(self, request):
        return False


@admin.register(FlushBatch)
class FlushBatchAdmin(admin.ModelAdmin):
    list_display = ["batch_id", "applied_at", "rows", "requests"]
    search_fields = ["batch_id"]
    date_hierarchy = "applied_at"
    readonly_fields = ["batch_id", "applied_at", "rows", "requests"]
    actions = ["flush_now"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Flush the gateway's counters now")
    def flush_now(self, request, queryset):
        result = usage_flush()
        self.message_user(
            request,
            f"Flushed {result.requests} requests in {result.batches} batches.",
            messages.SUCCESS,
        )


@admin.register(QuotaAlert)
class QuotaAlertAdmin(admin.ModelAdmin):
    list_display = [
        "subscription",
        "threshold",
        "window_unit",
        "window_start",
        "used",
        "quota_limit",
        "sent_at",
    ]
    list_filter = ["threshold", "window_unit", "organization"]
    search_fields = ["subscription__subscriber__email", "subscription__api__name"]
    raw_id_fields = ["subscription"]
    date_hierarchy = "sent_at"
