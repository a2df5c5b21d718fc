from django.apps import AppConfig


class StoreConfig(AppConfig):
    name = "store"

    def ready(self) -> None:
        # Models are loaded only now: the receivers' module imports them.
        from store import receivers

        receivers.connect()
