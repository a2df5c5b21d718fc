"""apimon's ASGI app with a gateway whose backend answers instantly, in process.

Measures the gateway's own cost: route and key lookup, the admit script (rate limit,
quota, count) and the JSON/ASGI plumbing, without the HTTP hop to a backend."""

from apimon import asgi
from gateway.proxy import GatewayApp

BODY = b'{"ok":true}'


class InstantGateway(GatewayApp):
    async def _forward(
        self, scope, receive, send, api, grant, key_header, quota_key, field, *meters
    ):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"11")],
            }
        )  # fmt: skip
        await send({"type": "http.response.body", "body": BODY})


asgi.gateway_application = InstantGateway()
gateway = asgi.gateway_application


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        await asgi._lifespan(receive, send)
    elif scope["path"].startswith("/gateway/"):
        await gateway(scope, receive, send)
    else:
        await asgi.django_application(scope, receive, send)
