"""The gateway's fixtures (`metering`, `gateway`), reused: the publisher's changes
are checked against the real in-process gateway."""

from tests.gateway.conftest import (  # noqa: F401 - the gateway's fixtures, reused
    backend_url,
    gateway,
    metering,
    redis_db,
    short_lived_connections,
)
