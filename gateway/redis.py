"""Redis access for the metering gateway: one sync client per process and one async
client per event loop, both on the same server.

With `REDIS_URL` set they talk to that Redis. Without it (the embedded default and the
test suite) they share one in-process stand-in, fakeredis with Lua through lupa, which
has Redis's semantics (atomic scripts, TTLs, hashes, sorted sets) but lives in one
process only: see README "No Redis" for what that means for `make run`.
"""

from __future__ import annotations

import asyncio
import threading
import weakref

import redis as redis_lib
import redis.asyncio as redis_asyncio
from django.conf import settings

_lock = threading.Lock()
_sync_client: redis_lib.Redis | None = None
_fake_server = None
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def uses_stand_in() -> bool:
    """True when there is no Redis server: the counters live in this process."""
    return not settings.REDIS_URL


def _server():
    global _fake_server
    if _fake_server is None:
        import fakeredis

        _fake_server = fakeredis.FakeServer()
    return _fake_server


def get_redis() -> redis_lib.Redis:
    """The process's synchronous client (jobs, services, views)."""
    global _sync_client
    if _sync_client is None:
        with _lock:
            if _sync_client is None:
                if uses_stand_in():
                    import fakeredis

                    _sync_client = fakeredis.FakeRedis(server=_server())
                else:
                    _sync_client = redis_lib.Redis.from_url(
                        settings.REDIS_URL, health_check_interval=30
                    )
    return _sync_client


class FastPack:
    """redis-py's command packing, the same bytes on the wire, in one pass: the
    library joins its whole buffer again for every argument, and the gateway's ADMIT
    has 20 to 40 of them per request (more with meters). Mixed into the class of the
    gateway's async connections."""

    def pack_command(self, *args) -> list[bytes]:
        first = args[0]
        # A command name given with its sub-command ("SCRIPT LOAD") goes as two.
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif b" " in first:
            args = (*first.split(), *args[1:])
        encoder = self.encoder
        encoding, errors = encoder.encoding, encoder.encoding_errors
        out = [b"*%d\r\n" % len(args)]
        append = out.append
        for arg in args:
            kind = type(arg)
            if kind is bytes:
                pass
            elif kind is str:
                arg = arg.encode(encoding, errors)
            elif kind is int:
                arg = b"%d" % arg
            else:  # floats, memoryviews, and the library's errors for the rest
                arg = encoder.encode(arg)
            append(b"$%d\r\n" % len(arg))
            append(arg)
            append(b"\r\n")
        return [b"".join(out)]


_fast_classes: dict[type, type] = {}


def fast_packing(connection_class: type) -> type:
    """`connection_class` (TCP, TLS or Unix socket) with `FastPack`'s packing."""
    fast = _fast_classes.get(connection_class)
    if fast is None:
        fast = type(
            f"FastPack{connection_class.__name__}", (FastPack, connection_class), {}
        )
        _fast_classes[connection_class] = fast
    return fast


def get_async_redis() -> redis_asyncio.Redis:
    """The asynchronous client of the running event loop (the gateway's hot path).

    redis.asyncio connections belong to the loop that opened them, so each loop gets
    its own client and pool; a process under uvicorn has one loop."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        if uses_stand_in():
            import fakeredis

            client = fakeredis.FakeAsyncRedis(server=_server())
        else:
            client = redis_asyncio.Redis.from_url(
                settings.REDIS_URL, max_connections=512, health_check_interval=30
            )
            pool = client.connection_pool
            pool.connection_class = fast_packing(pool.connection_class)
        _async_clients[loop] = client
    return client


def reset_clients() -> None:
    """Forget every client (and the stand-in's data). For tests and settings changes."""
    global _sync_client, _fake_server
    with _lock:
        _sync_client = None
        _fake_server = None
        _async_clients.clear()
