"""Reading the deployment's calendar file (`spec/deadlines.md` §1); the parsing is the core's."""

from __future__ import annotations

from pathlib import Path

from tthc_core.calendar_config import CalendarConfig, CalendarFileError, parse_calendar

__all__ = ["CalendarFileError", "load_calendar"]


def load_calendar(path: str | Path | None) -> CalendarConfig:
    """The calendar of `path` (None: the default calendar, holidays.VN only); raises CalendarFileError
    with the line and the reason."""
    if path is None:
        return CalendarConfig()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise CalendarFileError(None, f"cannot read: {exc.strerror}", str(p)) from None
    except UnicodeDecodeError:
        raise CalendarFileError(None, "not UTF-8 text", str(p)) from None
    return parse_calendar(text, str(p))
