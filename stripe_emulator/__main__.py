"""The emulator as a service:
`python -m stripe_emulator --host 127.0.0.1 --port 12111`."""

from __future__ import annotations

import argparse
import logging
import os

from werkzeug.serving import run_simple

from stripe_emulator.config import ConfigError, EmulatorConfig
from stripe_emulator.emulator import Emulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stripe_emulator",
        description="An offline Stripe: API, Connect OAuth, hosted pages, webhooks.",
    )
    parser.add_argument(
        "--host", default=os.environ.get("STRIPE_EMULATOR_HOST", "127.0.0.1")
    )
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("STRIPE_EMULATOR_PORT", "12111"))
    )
    parser.add_argument(
        "--db",
        help="SQLite file for the state (env STRIPE_EMULATOR_DB, "
        "default var/stripe-emulator.sqlite3)",
    )
    parser.add_argument(
        "--webhook-url",
        help="where events are posted (env "
        "STRIPE_EMULATOR_WEBHOOK_URL); an empty string disables delivery",
    )
    parser.add_argument(
        "--webhook-secret", help="signing secret (env STRIPE_WEBHOOK_SECRET)"
    )
    parser.add_argument(
        "--client-id",
        help="the platform's Connect client id (env "
        "STRIPE_CONNECT_CLIENT_ID, default ca_emulator_apimon)",
    )
    parser.add_argument(
        "--public-url",
        help="base URL put into hosted page links (env "
        "STRIPE_EMULATOR_PUBLIC_URL; default: the address requests come to)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        help="compress the emulator's schedules "
        "by this factor, e.g. 1440 makes a day a minute (env "
        "STRIPE_EMULATOR_TIME_SCALE)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        config = EmulatorConfig.from_env(
            db_path=args.db,
            webhook_url=args.webhook_url,
            webhook_secret=args.webhook_secret,
            client_id=args.client_id,
            public_url=args.public_url,
            time_scale=args.time_scale,
        )
    except ConfigError as exc:
        raise SystemExit(f"python -m stripe_emulator: {exc}") from exc
    if args.webhook_url == "":
        config.webhook_url = None
    emulator = Emulator(config)
    emulator.start_background()
    logging.getLogger("stripe_emulator").info(
        "Stripe emulator on http://%s:%s (state in %s, webhooks to %s, %s)",
        args.host,
        args.port,
        config.db_path,
        config.webhook_url or "nowhere",
        "closed: controls need STRIPE_EMULATOR_CONTROL_SECRET"
        if config.closed
        else "open: for development only, never expose it",
    )
    try:
        run_simple(
            args.host, args.port, emulator.app, threaded=True, use_reloader=False
        )
    finally:
        emulator.close()


if __name__ == "__main__":
    main()
