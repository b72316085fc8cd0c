"""Reading the deployment's calendar file (`spec/deadlines.md` §1); the parsing is the core's."""

from __future__ import annotations

from pathlib import Path

from tthc_core.calendar_config import CalendarConfig, CalendarFileError, parse_calendar

from .config_files import load_config

__all__ = ["CalendarFileError", "load_calendar"]


def load_calendar(path: str | Path | None) -> CalendarConfig:
    """The calendar of `path` (None: the default calendar, holidays.VN only); raises CalendarFileError
    with the line and the reason."""
    if path is None:
        return CalendarConfig()
    return load_config(path, parse_calendar, CalendarFileError)
