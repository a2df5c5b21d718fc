"""ASGI entry point. The web process runs under an ASGI server so the gateway's
async views can wait on slow backends without holding a worker each."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apimon.settings")
application = get_asgi_application()
