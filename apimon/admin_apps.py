from django.contrib.admin.apps import AdminConfig


class ApimonAdminConfig(AdminConfig):
    """django.contrib.admin, on apimon's AdminSite (apimon/admin_site.py)."""

    default_site = "apimon.admin_site.AdminSite"
