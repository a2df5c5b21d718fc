"""The gateway's async Redis connections pack commands in one pass (`FastPack`):
the bytes on the wire are redis-py's own, for every kind of argument."""

from __future__ import annotations

import os

import pytest
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import DataError

from gateway import meter
from gateway import redis as gateway_redis
from tests.gateway.conftest import LoopThread

COMMANDS = [
    ("GET", "am:gw:live"),
    ("SCRIPT LOAD", "return 1"),  # a command name with its sub-command
    (b"CONFIG GET", b"maxmemory"),
    ("EVALSHA", "a" * 40, 2, "k1", b"k2", 0, -1, 10**15, -(10**18), 3.25, "x"),
    ("SET", "clé", "värde ✓", "EX", 60),  # non-ASCII text
    ("SET", "big", "x" * 200_000),  # larger than the library's chunking cutoff
    ("SET", "view", memoryview(b"bytes in a view")),
    ("HSET", "h", "", b""),  # empty arguments
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
@pytest.mark.parametrize("base", [Connection, UnixDomainSocketConnection])
def test_the_bytes_on_the_wire_are_redis_pys(command, base):
    fast = gateway_redis.fast_packing(base)()

    assert b"".join(fast.pack_command(*command)) == b"".join(
        base().pack_command(*command)
    )


def test_arguments_redis_py_refuses_are_refused_alike():
    fast = gateway_redis.fast_packing(Connection)()

    for bad in (True, None, object()):
        with pytest.raises(DataError):
            fast.pack_command("SET", "k", bad)


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a Redis server")
def test_the_gateway_client_packs_fast_and_runs_the_scripts(redis_db):
    async def go():
        client = gateway_redis.get_async_redis()
        assert issubclass(
            client.connection_pool.connection_class, gateway_redis.FastPack
        )
        await client.set("am:gw:test:clé", "värde ✓")
        value = await client.get("am:gw:test:clé")
        report = client.register_script(meter.REPORT)
        await report(
            keys=[meter.LIVE, meter.ALERTS, ""], args=[b"7:0:tokens", 12, 0, 7]
        )
        live = await client.hgetall(meter.LIVE)
        await client.aclose()
        return value, live

    loop = LoopThread()  # a loop of its own, as the gateway's tests use
    try:
        value, live = loop.run(go())
    finally:
        loop.stop()

    assert value == "värde ✓".encode()
    assert live == {b"7:0:tokens": b"12"}
