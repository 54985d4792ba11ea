"""The controller's log output: one JSON object a line, or readable text.

Why a formatter of our own rather than a logging library: the standard library already
carries the structured part (`extra={"dag": ..., "run": ..., "task": ..., "try": ...}`
becomes attributes of the record); it only has to be written out. The JSON form keeps
every such field as a key, so a log pipeline can filter on `dag` or `run` without
parsing prose, and one record is always one line (tracebacks included), so a
multi-line exception never splits into fragments a collector reads as separate events.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO

from controller.executor.kubeclient import describe_api_exception

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
# The fields that name what a line is about, printed first in the text form.
_CONTEXT_ORDER = ("dag", "run", "task", "item", "try", "revision", "pod")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    fields = {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD and not key.startswith("_") and value is not None
    }
    ordered = {key: fields.pop(key) for key in _CONTEXT_ORDER if key in fields}
    ordered.update(sorted(fields.items()))
    return ordered


def _api_refusal(exc_info: _ExcInfo) -> str | None:
    """The API refusal behind a logged exception (itself or what caused it), in one line.

    A refusal is the outside world answering, not a bug: its traceback says nothing a
    user can act on, while the API's message says exactly what was refused.
    """
    exc: BaseException | None = exc_info[1]
    while exc is not None:
        described = describe_api_exception(exc)
        if described is not None:
            return described
        exc = exc.__cause__ or exc.__context__
    return None


class _ReadableExceptions(logging.Formatter):
    def formatException(self, ei: _ExcInfo) -> str:  # noqa: N802 - logging's own name
        return _api_refusal(ei) or super().formatException(ei)


class JsonFormatter(_ReadableExceptions):
    """`{"time": ..., "level": ..., "logger": ..., "message": ..., <extras>}` a line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(_ReadableExceptions):
    """`TIME LEVEL logger: message  dag=... run=...` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        context = " ".join(f"{key}={value}" for key, value in _extras(record).items())
        line = f"{when} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if context:
            line = f"{line}  {context}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(*, log_format: str, level: str, stream: TextIO | None = None) -> None:
    """Send every logger's records to `stream` (stderr) in the chosen form, once."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # The Kubernetes client logs every request body at DEBUG, credentials included.
    for noisy in ("urllib3", "kubernetes.client.rest", "apscheduler", "git", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))
