from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"

    def ready(self) -> None:
        # Models are loaded only now: the receivers' module imports them.
        from gateway import receivers

        receivers.connect()
