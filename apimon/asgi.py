"""ASGI entry point. The web process runs under an ASGI server (uvicorn) so the
gateway's async views can wait on slow backends without holding a worker each."""

import os
import warnings

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apimon.settings")

# WhiteNoise streams static files from a sync iterator; Django warns about that under
# ASGI. It is harmless for static files (and a CDN or proxy serves them at scale).
warnings.filterwarnings(
    "ignore", message="StreamingHttpResponse must consume synchronous iterators"
)

application = get_asgi_application()
