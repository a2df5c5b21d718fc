from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        # Models are loaded only now: the receivers' module imports them.
        from billing import receivers

        receivers.connect()
