"""Reading a deployment's YAML configuration files (the calendar, the DVCQG catalogue): the text is read
here, the parsing is the pure packages' (`parse_calendar`, `parse_catalogue`), and every failure is the
file's own error class, with the path and the reason (the services turn it into one line and exit 2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def load_config(path: str | Path, parse: Callable[[str, str], T], error: Callable[[int | None, str, str], Exception]) -> T:
    """`parse(text, path)` of the UTF-8 file at `path`; `error(line, reason, path)` when it cannot be read."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(None, f"cannot read: {exc.strerror}", str(p)) from None
    except UnicodeDecodeError:
        raise error(None, "not UTF-8 text", str(p)) from None
    return parse(text, str(p))
