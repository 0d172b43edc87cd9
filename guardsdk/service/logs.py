"""The service's log lines: one JSON object per line (``log_format="json"``, the default) for every record — the
request lines, the guard's block and opt-in lines, uvicorn's start-up, shutdown and error lines, tracebacks — so a
log pipeline (Loki, Cloud Logging, Elasticsearch) parses each without rules of its own; or plain text."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

LOG_FORMATS = ("json", "text")


class Fields(dict):
    """A log message that is a set of fields (a request line, the start-up config): printed as JSON by a text
    handler, merged as they are into the line's object by :class:`JsonLines`."""

    def __str__(self) -> str:
        return json.dumps(self, ensure_ascii=False, default=str)


class JsonLines(logging.Formatter):
    """A record as one JSON line: time (UTC, ISO 8601), level, logger, and its message; a :class:`Fields` message,
    or one that is itself a JSON object, is merged in as fields; a traceback goes in ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                                "level": record.levelname, "logger": record.name}  # fmt: skip
        if isinstance(record.msg, Fields) and not record.args:
            line.update(record.msg)
        else:
            message = record.getMessage()
            fields = _object(message)
            line.update(fields if fields is not None else {"message": message})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _object(message: str) -> dict[str, Any] | None:
    if not message.startswith("{"):
        return None
    try:
        value = json.loads(message)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def configure_logging(log_format: str) -> None:
    """Send every log record at INFO and above, uvicorn's included (run it with ``log_config=None``: its loggers
    then propagate here), to standard error in ``log_format``, in place of the root logger's handlers."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format must be one of {LOG_FORMATS}, not {log_format!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter("%(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))
    if log_format == "json":  # no progress bars between the JSON lines (Hugging Face's, as a model loads)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        if "transformers" in sys.modules:
            sys.modules["transformers"].utils.logging.disable_progress_bar()


__all__ = ["LOG_FORMATS", "Fields", "JsonLines", "configure_logging"]
