"""Settings for benchmark servers: apimon's own, plus one bare view (bench.urls).

BENCH_NO_WHITENOISE=1 drops WhiteNoise from the middleware: WhiteNoise 6 is sync-only,
which makes Django run every request through extra sync/async thread hops under
ASGI. The benchmark reports the bare view both ways (bench/README.md)."""

import os

from apimon.settings import *  # noqa: F403
from apimon.settings import MIDDLEWARE

ROOT_URLCONF = "bench.urls"
if os.environ.get("BENCH_NO_WHITENOISE") == "1":
    MIDDLEWARE = [m for m in MIDDLEWARE if "whitenoise" not in m]
