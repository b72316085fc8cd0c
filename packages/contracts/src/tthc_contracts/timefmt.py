"""Timestamps on the wire: RFC 3339 with seconds, in Vietnam's +07:00 for everything we write."""

from datetime import datetime, timedelta, timezone

VN_TZ = timezone(timedelta(hours=7), "ICT")


def to_vn(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise ValueError("naive timestamp")
    return ts.astimezone(VN_TZ)


def format_ts(ts: datetime | None) -> str | None:
    """`2026-02-27T10:00:00+07:00` (seconds always, no fraction unless there is one)."""
    if ts is None:
        return None
    return to_vn(ts).isoformat(timespec="seconds" if to_vn(ts).microsecond == 0 else "microseconds")


def parse_ts(text: str) -> datetime:
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        raise ValueError(f"naive timestamp {text!r}")
    return ts
