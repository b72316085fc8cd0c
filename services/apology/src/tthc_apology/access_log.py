"""Keep officer keys out of the access log: `GET /inbox?key=...` is logged as `GET /inbox?key=***`."""

from __future__ import annotations

import logging
import re

_KEY_PARAM = re.compile(r"([?&])key=[^&]*")


class RedactKeyParameter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn.access logs (client, method, path with query, http version, status)
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "key=" in args[2]:
            record.args = (*args[:2], _KEY_PARAM.sub(r"\1key=***", args[2]), *args[3:])
        return True


def redact_keys_in_access_log() -> None:
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactKeyParameter) for f in logger.filters):
        logger.addFilter(RedactKeyParameter())
