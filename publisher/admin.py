"""The operator's view of APIs and tiers. Writes that have effects (lifecycle, limits
the gateway enforces) go through the services; prices are read-only here because
they are versioned (change them in the publisher console)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from publisher import hooks, services
from publisher.models import (
    Api,
    ApiState,
    ApiStateChange,
    ApiTier,
    LifecycleAction,
    Meter,
    MeterPrice,
    Tag,
    Tier,
    TierVersion,
)
from publisher.validators import validate_backend_address

VERSION_FIELDS = [
    "number",
    "pricing_model",
    "currency",
    "billing_cycle",
    "trial_days",
    "fixed_fee",
    "migrate_existing",
    "created_at",
    "created_by",
]


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ApiTierInline(admin.TabularInline):
    model = ApiTier
    extra = 0
    autocomplete_fields = ["tier"]
    fields = ["tier", "created_at"]
    readonly_fields = ["created_at"]


class ApiStateChangeInline(ReadOnlyInline):
    model = ApiStateChange
    fields = ["at", "action", "from_state", "to_state", "actor", "note"]
    readonly_fields = fields


class MeterInline(ReadOnlyInline):
    """Meters are written by the publisher's pages (publisher.meters) only."""

    model = Meter
    fields = ["key", "display_name", "unit_label", "display_scale", "source"]
    readonly_fields = fields


def _transition(action: str):
    def run(modeladmin, request, queryset):
        done = 0
        for api in queryset:
            try:
                services.api_transition(api=api, action=action, actor=request.user)
                done += 1
            except ValidationError as exc:
                modeladmin.message_user(
                    request, f"{api}: {' '.join(exc.messages)}", messages.WARNING
                )
        if done:
            modeladmin.message_user(request, f"{action.capitalize()}: {done} API(s).")

    run.__name__ = f"{action}_apis"
    run.short_description = f"{LifecycleAction(action).label} selected APIs"
    return run


@admin.register(Api)
class ApiAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "version",
        "context",
        "organization",
        "state",
        "visibility",
        "state_changed_at",
    ]
    list_filter = ["state", "visibility", "organization"]
    search_fields = ["name", "context", "description", "organization__name"]
    filter_horizontal = ["tags"]
    readonly_fields = [
        "organization",
        "state",
        "state_before_block",
        "state_changed_at",
        "backend_refused_at",
        "backend_refused_address",
        "openapi_spec",
        "openapi_filename",
        "created_at",
        "updated_at",
    ]
    fields = [
        "organization",
        "name",
        "version",
        "context",
        "backend_url",
        "description",
        "documentation",
        "visibility",
        "tags",
        *readonly_fields[1:],
    ]
    inlines = [ApiTierInline, MeterInline, ApiStateChangeInline]
    actions = [_transition(LifecycleAction.BLOCK), _transition(LifecycleAction.UNBLOCK)]

    def has_add_permission(self, request) -> bool:
        return False  # APIs are created in their organization's publisher console

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.state != ApiState.CREATED:
            fields += ["version", "context"]  # subscribers' code calls this address
        return fields

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if "backend_url" in form.base_fields:
            form.base_fields["backend_url"].validators.append(validate_backend_address)
        if obj is not None and "tags" in form.base_fields:
            form.base_fields["tags"].queryset = Tag.objects.filter(
                organization=obj.organization
            )
        return form

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        hooks.api_changed.send(sender=Api, api=obj)


class TierVersionInline(ReadOnlyInline):
    model = TierVersion
    fields = VERSION_FIELDS
    readonly_fields = VERSION_FIELDS
    show_change_link = True  # the version's page shows its meters' prices


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "organization",
        "billing_plan",
        "current_version",
        "quota_limit",
        "quota_unit",
        "rate_limit",
        "rate_unit",
        "archived_at",
    ]
    list_filter = [
        "billing_plan",
        "organization",
        ("archived_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["name", "description", "organization__name"]
    readonly_fields = [
        "organization",
        "billing_plan",
        "current_version",
        "created_at",
        "updated_at",
    ]
    fields = [
        "organization",
        "name",
        "description",
        "quota_limit",
        "quota_unit",
        "stop_on_quota_reach",
        "rate_limit",
        "rate_unit",
        "count_every_request",
        "billing_plan",
        "current_version",
        "archived_at",
        "created_at",
        "updated_at",
    ]
    inlines = [TierVersionInline]

    def has_add_permission(self, request) -> bool:
        return False  # a tier needs a priced first version: use the console

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        # Its limits may have changed.
        hooks.tier_changed.send(sender=Tier, tier=obj, limits_changed=True)


class MeterPriceInline(ReadOnlyInline):
    """A version's price of each meter it charges, requests included, with its
    bands; and the quotas of meters other than requests (the requests' quota is
    the tier's)."""

    model = MeterPrice
    fields = [
        "meter",
        "pricing_model",
        "unit_price",
        "included_units",
        "overage_price",
        "overage_block_size",
        "band_list",
        "quota_limit",
        "quota_unit",
        "stop_on_quota_reach",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("bands")

    @admin.display(description="Bands (up to: price per unit + flat fee)")
    def band_list(self, obj: MeterPrice) -> str:
        return "; ".join(
            f"{b.up_to if b.up_to is not None else '∞'}: {b.unit_price.normalize():f}"
            + (f" + {b.flat_fee.normalize():f}" if b.flat_fee else "")
            for b in obj.bands.all()
        )


@admin.register(TierVersion)
class TierVersionAdmin(admin.ModelAdmin):
    """Read-only: a version is the price subscribers were sold."""

    list_display = ["tier", "number", "pricing_model", "currency", "created_at"]
    list_filter = ["currency", "tier__organization"]
    search_fields = ["tier__name", "tier__organization__name"]
    readonly_fields = ["tier", *VERSION_FIELDS]
    fields = readonly_fields
    inlines = [MeterPriceInline]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "organization"]
    list_filter = ["organization"]
    search_fields = ["name", "organization__name"]


@admin.register(ApiStateChange)
class ApiStateChangeAdmin(admin.ModelAdmin):
    list_display = ["api", "action", "from_state", "to_state", "actor", "at"]
    list_filter = ["action", "to_state", "api__organization"]
    search_fields = ["api__name", "actor__email", "note"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
