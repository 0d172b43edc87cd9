"""The service's log lines: one JSON object per line (``log_format="json"``, the default) for every record — the
request lines, the guard's block and opt-in lines, uvicorn's start-up, shutdown and error lines, Python warnings,
transformers' messages, tracebacks — so a log pipeline (Loki, Cloud Logging, Elasticsearch) parses each without rules
of its own; or plain text."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

LOG_FORMATS = ("json", "text")
#: Loggers that write request URLs at INFO (credentials in a server's URL included): WARNING and above only.
_CHATTY = ("httpx", "httpcore", "openai")
#: Characters that end a line for ``str.splitlines()`` and that ``ensure_ascii=False`` leaves as they are.
_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


def _dumps(value: object) -> str:
    """One line of JSON, whatever the text in it."""
    return json.dumps(value, ensure_ascii=False, default=str).translate(_LINE_BREAKS)


class Fields(dict):
    """A log message that is a set of fields (a request line, the start-up config): printed as JSON by a text
    handler, merged into the line's object by :class:`JsonLines`."""

    def __str__(self) -> str:
        return _dumps(self)


class JsonLines(logging.Formatter):
    """A record as one JSON line: time (UTC, ISO 8601), level, logger, and its message; a :class:`Fields` message,
    or one that is itself a JSON object, is merged in as fields (never over ``time``, ``level`` or ``logger``); a
    traceback goes in ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                                "level": record.levelname, "logger": record.name}  # fmt: skip
        if isinstance(record.msg, Fields) and not record.args:
            fields: dict[str, Any] | None = record.msg
        else:
            message = record.getMessage()
            fields = _object(message) or {"message": message}
        line.update((key, value) for key, value in fields.items() if key not in ("time", "level", "logger"))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _dumps(line)


def _object(message: str) -> dict[str, Any] | None:
    if not message.startswith("{"):
        return None
    try:
        value = json.loads(message)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def configure_logging(log_format: str, *, replace: bool = False) -> None:
    """Send every log record at INFO and above — uvicorn's (run it with ``log_config=None``: its loggers then
    propagate here), Python warnings, transformers' — to standard error in ``log_format``. Where the root logger
    already has handlers (an application's own), they stay and nothing is added, unless ``replace``."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format must be one of {LOG_FORMATS}, not {log_format!r}")
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    _through_root_logger(json_lines=log_format == "json")
    root = logging.getLogger()
    if root.handlers and not replace:
        return
    handler = logging.StreamHandler()
    text = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(JsonLines() if log_format == "json" else text)
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))


def _through_root_logger(json_lines: bool) -> None:
    """transformers writes through a handler of its own, in text: send its records to the root logger instead; and
    in JSON mode no progress bars between the lines (Hugging Face's, as a model loads)."""
    if json_lines:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # a GGUF-only install
        return
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
    if json_lines:
        hf_logging.disable_progress_bar()


__all__ = ["LOG_FORMATS", "Fields", "JsonLines", "configure_logging"]
