import argparse
import logging

from aiohttp import web

from sample_api.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="apimon's sample backend API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--access-log", action="store_true")
    parser.add_argument(
        "--count-served",
        action="store_true",
        help="count requests tagged with X-Count-Tag per tag and status "
        "(GET /_served), for the fault tests",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sample-api %(message)s")
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is optional
        pass
    web.run_app(
        create_app(count_served=args.count_served),
        host=args.host,
        port=args.port,
        access_log=logging.getLogger("aiohttp.access") if args.access_log else None,
        print=lambda msg: logging.info(msg.strip()),
        backlog=2048,
    )


if __name__ == "__main__":
    main()
