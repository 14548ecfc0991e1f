"""Run the schema registry: ``python -m streams.registry --port 8081 --bootstrap HOST:PORT``."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from streams.registry.app import create_app
from streams.registry.compat import DEFAULT_LEVEL, Level
from streams.registry.errors import RegistryServiceError
from streams.registry.kafka_storage import KafkaStorage


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m streams.registry",
        description="Confluent-compatible schema registry (AVRO) keeping its state in a "
        "compacted Kafka topic. Assumes it is the only registry writing that topic.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8081, help="port to listen on")
    parser.add_argument("--bootstrap", default=None,
                        help="Kafka bootstrap servers (default: feedstream settings)")
    parser.add_argument("--topic", default="_schemas", help="compacted topic holding the state")
    parser.add_argument("--replication", type=int, default=None,
                        help="replication of the topic if created (default: min(3, brokers))")
    parser.add_argument("--default-compatibility", default=DEFAULT_LEVEL.value,
                        choices=[level.value for level in Level],
                        help="level used when no global config was set")
    parser.add_argument("--log-level", default="info", help="python and uvicorn log level")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Replay the topic, then serve the API until interrupted."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bootstrap = args.bootstrap
    if bootstrap is None:
        from core.settings import get_settings

        bootstrap = get_settings().kafka_bootstrap
    storage = KafkaStorage(bootstrap, topic=args.topic, replication=args.replication)
    try:
        app = create_app(storage, Level(args.default_compatibility))
    except RegistryServiceError as exc:
        logging.getLogger("streams.registry").error("cannot start: %s", exc.message)
        return 1
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower())
    return 0


if __name__ == "__main__":
    sys.exit(main())
