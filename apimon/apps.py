from django.apps import AppConfig


class ApimonConfig(AppConfig):
    name = "apimon"
    verbose_name = "apimon: tenants and accounts"
