from django.conf import settings
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils import timezone

from apimon.models import (
    Invitation,
    JobFailure,
    Membership,
    Organization,
    PlatformPlan,
    User,
)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "date_joined"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name")}),
        (
            "Permissions",
            {
                "fields": (
                    "is_active",
                    "is_staff",
                    "is_superuser",
                    "groups",
                    "user_permissions",
                )
            },
        ),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),
    )


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "plan", "created_at"]
    list_filter = ["plan"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "restricted_access", "created_at"]
    list_filter = ["role", "restricted_access", "organization"]
    raw_id_fields = ["access_decided_by"]
    search_fields = ["user__email", "organization__name", "organization__slug"]
    autocomplete_fields = ["user", "organization"]


@admin.register(PlatformPlan)
class PlatformPlanAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "monthly_price_minor",
        "currency",
        "commission_percent",
        "allows_monetization",
        "is_trial",
        "is_active",
    ]
    list_filter = ["allows_monetization", "is_active", "is_trial"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    def get_changeform_initial_data(self, request):
        # A new plan starts from the platform's currency and default commission
        # (PLATFORM_CURRENCY, PLATFORM_DEFAULT_COMMISSION_PERCENT; README "Configuration").
        return {
            "currency": settings.PLATFORM_CURRENCY,
            "commission_percent": settings.PLATFORM_DEFAULT_COMMISSION_PERCENT,
            **super().get_changeform_initial_data(request),
        }


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = [
        "email",
        "organization",
        "role",
        "status",
        "created_at",
        "expires_at",
    ]
    list_filter = ["role", "organization"]
    search_fields = ["email", "organization__name"]
    readonly_fields = ["token_hash", "accepted_at", "accepted_by", "created_at"]
    actions = ["revoke"]

    @admin.action(description="Revoke selected pending invitations")
    def revoke(self, request, queryset):
        from apimon.services import invitation_revoke

        for invitation in queryset:
            invitation_revoke(invitation=invitation)


@admin.register(JobFailure)
class JobFailureAdmin(admin.ModelAdmin):
    """What the periodic jobs could not do, item by item (apimon.jobs): the next run
    tries again and resolves the row when it succeeds."""

    list_display = [
        "job",
        "organization",
        "object_ref",
        "short_error",
        "count",
        "first_seen",
        "last_seen",
        "resolved",
    ]
    list_filter = ["resolved", "job", "organization"]
    search_fields = ["object_ref", "error", "organization__name", "organization__slug"]
    list_select_related = ["organization"]
    readonly_fields = [
        "job",
        "organization",
        "object_ref",
        "error",
        "first_seen",
        "last_seen",
        "count",
        "resolved_at",
    ]
    actions = ["mark_resolved"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="error")
    def short_error(self, obj: JobFailure) -> str:
        return obj.error.splitlines()[0][:120] if obj.error else ""

    @admin.action(description="Mark selected failures resolved")
    def mark_resolved(self, request, queryset):
        queryset.filter(resolved=False).update(
            resolved=True, resolved_at=timezone.now()
        )
