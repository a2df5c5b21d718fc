"""What the egress policy and the cookie rules cost the gateway: prints figures,
asserts nothing. See bench/README.md.

    .venv/bin/python bench/egress.py

In process, no server: times the code the gateway runs per request for the cookie
rules (the forwarded headers, the answer's headers, the host check of GATEWAY_HOST)
and per new backend connection for the egress policy (the verdict on an address,
cached; the socket factory). A shared machine's load moves these figures less than
wrk's, since nothing waits on another process.
"""

from __future__ import annotations

import os
import socket
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apimon.settings")
os.environ["BACKEND_PRIVATE_NETWORKS"] = "deny"
os.environ["BACKEND_ALLOWED_NETWORKS"] = "127.0.0.1/32"


def per_call(fn, number: int) -> float:
    """Best of 5 runs, in microseconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    import django

    django.setup()
    from apimon import asgi, egress
    from gateway import proxy

    names = proxy.apimon_cookie_names()
    scope = {
        "client": ("203.0.113.9", 5555),
        "scheme": "https",
        "headers": [
            (b"host", b"gw.example.net"),
            (b"user-agent", b"curl/8.5.0"),
            (b"accept", b"*/*"),
            (b"x-api-key", b"am_0123456789abcdef"),
            (b"x-forwarded-for", b"198.51.100.7"),
            (b"content-type", b"application/json"),
        ],
    }
    with_cookie = {
        **scope,
        "headers": [
            *scope["headers"],
            (b"cookie", b"sessionid=abc; csrftoken=def; theirs=1"),
        ],
    }
    answer = [
        (b"Content-Type", b"application/json"),
        (b"Content-Length", b"11"),
        (b"Date", b"Mon, 15 Jan 2027 10:00:00 GMT"),
        (b"Server", b"backend"),
        (b"Cache-Control", b"no-store"),
        (b"ETag", b'"abc"'),
    ]
    with_set_cookie = [
        *answer,
        (b"Set-Cookie", b"sessionid=evil; Path=/"),
        (b"Set-Cookie", b"theirs=1; Path=/"),
    ]
    info = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80))
    n = 200_000
    rows = [
        ("per request: forwarded headers, no Cookie",
         per_call(lambda: proxy._forward_headers(scope, b"x-api-key", names), n)),
        ("per request: forwarded headers, Cookie stripped",
         per_call(lambda: proxy._forward_headers(with_cookie, b"x-api-key", names), n)),
        ("per request: answer headers + nosniff, no Set-Cookie",
         per_call(lambda: proxy._answer_headers(answer, names), n)),
        ("per request: answer headers, 2 Set-Cookie",
         per_call(lambda: proxy._answer_headers(with_set_cookie, names), n)),
        ("per request: GATEWAY_HOST host check",
         per_call(lambda: asgi._host(scope), n)),
        ("per connection: verdict on an address (cached)",
         per_call(lambda: egress.address_refusal("127.0.0.1"), n)),
        ("per connection: verdict on an address (first time)",
         per_call(lambda: egress._Policy(("127.0.0.1/32",))._refusal("93.184.215.14"),
                  n // 10)),
        ("per connection: socket factory (check + socket())",
         per_call(lambda: egress.socket_factory(info).close(), n // 10)),
    ]  # fmt: skip
    print(f"load average before: {Path('/proc/loadavg').read_text().split()[0]}")
    for name, micros in rows:
        print(f"  {name:<54} {micros:7.2f} µs")


if __name__ == "__main__":
    main()
