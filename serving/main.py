"""Run the API with uvicorn: ``python -m serving.main --host 127.0.0.1 --port 8000``."""

from __future__ import annotations

import argparse

import uvicorn

from core import logs, tracing
from core.settings import get_settings
from serving.app import create_app


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until interrupted."""
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m serving.main", description="Serve the feedstream API.")
    parser.add_argument("--host", default=settings.host, help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=settings.api_port, help="port (default: %(default)s)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                        help="log every request (default: on)")
    args = parser.parse_args(argv)
    logs.configure(args.log_level)  # JSON lines off a terminal, with request ids (access lines too)
    tracing.setup(settings, "api")  # off unless FEEDSTREAM_TRACING_EXPORTER names an exporter
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level,
                access_log=args.access_log, log_config=None)


if __name__ == "__main__":
    main()
