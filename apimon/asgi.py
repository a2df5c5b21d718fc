"""ASGI entry point. The web process runs under an ASGI server (uvicorn).

Requests under ``/gateway/`` (and the verify endpoint for external gateways,
``/gateway-verify``) go to the metering gateway's raw ASGI app
(gateway.proxy), which skips Django's middleware on its hot path; everything else goes
to Django's WSGI handler on a fixed pool of threads (`WEB_PAGE_THREADS`,
apimon.pagebridge): Django's own ASGI handler starts a new thread, and so opens a new
database connection, for every request, which cost the pages half their throughput
(bench/README.md, "Pages"). With GATEWAY_HOST set, the gateway answers on that host only and the
pages everywhere else (README "Running at scale"). The lifespan protocol, which Django does not speak, is answered here: it
closes the gateway's connection pools on shutdown and, when there is no Redis server
(the counters then live in this process), runs the usage flush and quota alerts in
this process too (README "No Redis").
"""

import asyncio
import contextlib
import gc
import logging
import os

from django.core.wsgi import get_wsgi_application

from apimon.pagebridge import PageBridge

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apimon.settings")

# Django's pages: its WSGI handler, run on a pool of threads that live as long as the
# process (each keeps its database connection, CONN_MAX_AGE).
_wsgi = get_wsgi_application()

from django.conf import settings  # noqa: E402

django_application = PageBridge(_wsgi, threads=settings.WEB_PAGE_THREADS)

# The ASGI entry point is part of the composition root (docs/architecture.md): it
# wires the gateway's raw app next to Django's.
from apimon.middleware import HEALTHZ_PATH  # noqa: E402
from gateway import services as gateway_services  # noqa: E402  (needs Django set up)
from gateway.proxy import GatewayApp, refuse_wrong_host  # noqa: E402
from gateway.redis import uses_stand_in  # noqa: E402

gateway_application = GatewayApp()
GATEWAY_PATHS = ("/gateway/", "/gateway-verify")
log = logging.getLogger("apimon.asgi")

FLUSH_EVERY = 2.0
ALERTS_EVERY = 30.0


async def _in_process_jobs() -> None:
    """The beat jobs of the metering side, for a web process that holds the counters."""
    since_alerts = 0.0
    while True:
        await asyncio.sleep(FLUSH_EVERY)
        try:
            await asyncio.to_thread(gateway_services.usage_flush)
            since_alerts += FLUSH_EVERY
            if since_alerts >= ALERTS_EVERY:
                since_alerts = 0.0
                await asyncio.to_thread(gateway_services.quota_alerts_send)
        except Exception:  # keep flushing after a database hiccup
            log.exception("in-process usage flush failed")


async def _lifespan(receive, send) -> None:
    jobs = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            # Everything imported so far lives as long as the process: keep it out of
            # the cyclic GC, whose full passes over it showed as tail-latency spikes.
            gc.freeze()
            if uses_stand_in():
                jobs = asyncio.create_task(_in_process_jobs())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if jobs is not None:
                jobs.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await jobs
                # Keep the last counts.
                await asyncio.to_thread(gateway_services.usage_flush)
            await gateway_application.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


def _host(scope) -> str:
    """The request's Host without its port (and an IPv6 address's brackets)."""
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1").lower()
            if host.startswith("["):
                return host[1 : host.find("]")]
            return host.rsplit(":", 1)[0].rstrip(".")
    return ""


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    to_gateway = scope["path"].startswith(GATEWAY_PATHS)
    gateway_host = settings.GATEWAY_HOST
    if gateway_host:
        # The gateway on its own host and the pages on theirs: a backend's answer can
        # then never read or set apimon's cookies. The health check answers on both.
        on_gateway_host = _host(scope) == gateway_host
        if on_gateway_host != to_gateway and not (
            on_gateway_host and scope["path"] == HEALTHZ_PATH
        ):
            await refuse_wrong_host(scope, send, gateway_host=on_gateway_host)
            return
    if to_gateway:
        await gateway_application(scope, receive, send)
    else:
        await django_application(scope, receive, send)
