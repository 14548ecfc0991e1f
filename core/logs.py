"""Log lines for every process: JSON when stderr is not a terminal, with request and event ids.

:data:`REQUEST_ID` (set per HTTP request by the API) and :data:`EVENT_ID` (set by a topology while
it applies an event) ride on every record logged in their context, so an access line, an error and
a worker's line about the same write can be joined. ``extra={"audit": ...}`` fields are kept.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
EVENT_ID: ContextVar[str | None] = ContextVar("event_id", default=None)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id", "event_id"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s"


class ContextIds(logging.Filter):
    """Copy the current request and event ids onto each record (None outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        record.event_id = EVENT_ID.get()
        ids = [f"req={record.request_id}"] if record.request_id else []
        ids += [f"event={record.event_id}"] if record.event_id else []
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the ids, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "msg": record.getMessage(),
        }
        for key in ("request_id", "event_id"):
            if getattr(record, key, None):
                out[key] = getattr(record, key)
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD and k != "ids"})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def formatter(json_lines: bool | None = None) -> logging.Formatter:
    """JSON (default when stderr is not a terminal) or one readable text line."""
    use_json = not sys.stderr.isatty() if json_lines is None else json_lines
    return JsonFormatter() if use_json else logging.Formatter(TEXT_FORMAT)


def install(root: logging.Logger | None = None, json_lines: bool | None = None) -> None:
    """Give every handler of ``root`` our formatter and id filter (after a framework set them up)."""
    root = root or logging.getLogger()
    fmt = formatter(json_lines)
    for handler in root.handlers:
        handler.setFormatter(fmt)
        if not any(isinstance(f, ContextIds) for f in handler.filters):
            handler.addFilter(ContextIds())


def configure(level: str | int = "INFO", json_lines: bool | None = None) -> None:
    """Log to stderr at ``level`` through :func:`install` (processes that own their logging)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    root.setLevel(level.upper() if isinstance(level, str) else level)
    install(root, json_lines)
