"""Run the API: ``python -m serving.main --host 127.0.0.1 --port 8000`` (uvicorn, or ``--server granian``)."""

from __future__ import annotations

import argparse
import os

from fastapi import FastAPI

from core import logs, tracing
from core.settings import get_settings
from serving.app import create_app

SERVERS = ("uvicorn", "granian")
LOG_LEVEL_ENV = "FEEDSTREAM_API_LOG_LEVEL"  # how the granian worker learns the level


def app_factory() -> FastAPI:
    """The app, built in the serving process (granian imports this in its worker)."""
    logs.configure(os.environ.get(LOG_LEVEL_ENV, "info"))
    settings = get_settings()
    tracing.setup(settings, "api")  # off unless FEEDSTREAM_TRACING_EXPORTER names an exporter
    return create_app(settings)


def serve_granian(host: str, port: int, log_level: str, access_log: bool) -> None:
    """One granian worker process (ASGI on uvloop, HTTP/1); the parent only supervises it."""
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.log import LogLevels
    from granian.server import Server

    os.environ[LOG_LEVEL_ENV] = log_level
    Server("serving.main:app_factory", factory=True, address=host, port=port, interface=Interfaces.ASGI,
           workers=1, loop=Loops.uvloop, http=HTTPModes.http1, websockets=True, log_level=LogLevels(log_level),
           log_access=access_log).serve()


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until interrupted."""
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m serving.main", description="Serve the feedstream API.")
    parser.add_argument("--host", default=settings.host, help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=settings.api_port, help="port (default: %(default)s)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                        help="log every request (default: on)")
    parser.add_argument("--server", choices=SERVERS, default="uvicorn",
                        help="ASGI server: uvicorn (uvloop + httptools, one process; the default, chosen "
                             "by docs/performance.md's comparison) or granian (one worker process under "
                             "a supervising parent)")
    args = parser.parse_args(argv)
    if args.server == "granian":
        serve_granian(args.host, args.port, args.log_level, args.access_log)
        return
    logs.configure(args.log_level)  # JSON lines off a terminal, with request ids (access lines too)
    uvicorn_run(args.host, args.port, args.log_level, args.access_log)


def uvicorn_run(host: str, port: int, log_level: str, access_log: bool) -> None:
    """uvicorn in this process (loop and HTTP parser ``auto``: uvloop and httptools, both installed)."""
    import uvicorn

    settings = get_settings()
    tracing.setup(settings, "api")  # off unless FEEDSTREAM_TRACING_EXPORTER names an exporter
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level,
                access_log=access_log, log_config=None)


if __name__ == "__main__":
    main()
