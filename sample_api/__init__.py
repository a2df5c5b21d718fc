"""A small JSON API that the demo organizations sell through the gateway: weather,
air quality and quotes (Acme), payments, fraud scores and exchange rates (Globex), plus endpoints for the gateway's tests and benchmarks (``/_bench/…``).

Run it with ``python -m sample_api --host 127.0.0.1 --port 8100`` (``make run`` does).
It is an aiohttp application with no database and no Django, so one process serves
thousands of requests per second and a slow endpoint does not block the others.
"""

from sample_api.app import create_app

__all__ = ["create_app"]
