"""The event contract v1, shared by intake, deadline, apology, metrics and `tthc replay`."""

from . import topics
from .derived import *  # noqa: F401,F403
from .events import *  # noqa: F401,F403
from .ids import derived_id
from .timefmt import VN_TZ, format_ts, now_vn, parse_ts, to_vn, utcnow

__all__ = ["topics", "derived_id", "VN_TZ", "format_ts", "now_vn", "parse_ts", "to_vn", "utcnow"]
