"""apimon's ASGI app as it was before the pages moved to a thread pool: Django's own
ASGI handler (a new thread, and so a new database connection, per request) beside
the gateway. bench/pages.py measures it next to the production app."""

from django.core.asgi import get_asgi_application

from apimon import asgi

asgi.django_application = get_asgi_application()
application = asgi.application
