"""Time, in one place: RFC 3339 timestamps on the wire (seconds, Vietnam's +07:00 for everything we
write) and the wall clock, which only services read (`utcnow` for bookkeeping columns, `now_vn` for an
officer's action); domain code runs on event time."""

from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache

VN_TZ = timezone(timedelta(hours=7), "ICT")


def utcnow() -> datetime:
    """The wall clock, aware, UTC (bookkeeping: when a row was written)."""
    return datetime.now(UTC)


def now_vn() -> datetime:
    """The wall clock in Vietnam time, to the second (what an officer's action is dated)."""
    return datetime.now(VN_TZ).replace(microsecond=0)


def to_vn(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise ValueError("naive timestamp")
    return ts.astimezone(VN_TZ)


def format_ts(ts: datetime | None) -> str | None:
    """`2026-02-27T10:00:00+07:00` (seconds always, no fraction unless there is one)."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        raise ValueError("naive timestamp")
    return _format_instant(ts)


# A hot path (a stored dossier state holds about ten instants, most of them shared by many dossiers).
# Equal aware datetimes are the same instant, whatever their offsets, so they share one +07:00 text.
@lru_cache(maxsize=1 << 14)
def _format_instant(ts: datetime) -> str:
    local = ts.astimezone(VN_TZ)
    return local.isoformat(timespec="seconds" if local.microsecond == 0 else "microseconds")


def parse_ts(text: str) -> datetime:
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        raise ValueError(f"naive timestamp {text!r}")
    return ts
