"""An instant column that means the same on SQLite and PostgreSQL.

PostgreSQL keeps `timestamptz`; SQLite has no time zones and would store the wall time of whatever
offset the value carried, so `+07:00` and `+00:00` instants would compare wrongly as text. Storing UTC
everywhere keeps range scans (`next_moment_at <= :watermark`) and unique constraints on instants
correct on both. Values are read back in Vietnam's +07:00, the offset of everything the services write.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator

from tthc_contracts import VN_TZ


class UtcDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime for a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(VN_TZ)
