"""Structured logs (one JSON object per line) that cannot carry applicant data.

Only whitelisted `extra=` fields reach the output: an event is logged by `event_id`, `type` and
`dossier_id` (`event_log_fields`), never by its `data`, where the applicant's name, address, phone and
e-mail live. Anything else passed in `extra` is dropped by the formatter, not printed.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# The only `extra=` keys a log line may carry. Add a key here only if it can never hold personal data.
SAFE_FIELDS = frozenset({
    "service", "event_id", "type", "dossier_id", "source", "topic", "partition", "offset", "consumer",
    "error", "count", "accepted", "duplicates", "status", "reason", "index", "field", "rows",
})

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()) | {"message", "asctime"}


def event_log_fields(event: Any) -> dict[str, Any]:
    """The loggable identity of an event (a model or a dict): event_id, type, dossier_id."""
    get = event.get if isinstance(event, Mapping) else (lambda name: getattr(event, name, None))
    fields = {name: get(name) for name in ("event_id", "type", "dossier_id")}
    return {k: v for k, v in fields.items() if isinstance(v, (str, int))}


def _safe_extra(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items()
            if k not in _RESERVED and k in SAFE_FIELDS and v is not None}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "service": self.service,
            "msg": record.getMessage(),
            **_safe_extra(record),
        }
        if record.exc_info and record.exc_info[0] is not None:
            # The class and the stack, not str(exc): an exception message may quote input values.
            line["exc_type"] = record.exc_info[0].__name__
            line["stack"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = _safe_extra(record)
        return text + ("" if not extra else " " + " ".join(f"{k}={v}" for k, v in extra.items()))


class _RateLimit(logging.Filter):
    """At most one record per (logger, message template) every `interval_s` from noisy libraries:
    during a Kafka outage aiokafka logs the same connection error ten times a second."""

    def __init__(self, prefixes: tuple[str, ...], interval_s: float = 10.0) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.interval_s = interval_s
        self._last: dict[tuple[str, Any], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, record.msg)
        last = self._last.get(key)
        if last is not None and record.created - last < self.interval_s:
            return False
        self._last[key] = record.created
        return True


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stdout` is at the time (test capture, a redirected stdout)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Route the root logger (and uvicorn's, FastStream's) to stdout in the chosen format."""
    handler = _StdoutHandler()
    handler.addFilter(_RateLimit(("aiokafka",)))
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_tthc", False):
            root.removeHandler(old)
    handler._tthc = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream", "aiokafka"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # aiokafka is chatty at INFO about every (re)connection.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
