"""Dates and times as a Vietnamese administrative document writes them (Nghị định 30/2020)."""

from __future__ import annotations

from datetime import date, datetime

from tthc_contracts.timefmt import to_vn

BLANK = "……"  # dotted blank left for the officer to fill in by hand


def nd30_day(day: date) -> str:
    """ND 30 Phụ lục I: days below 10 get a leading zero."""
    return f"{day.day:02d}"


def nd30_month(day: date) -> str:
    """ND 30 Phụ lục I: only months 1 and 2 get a leading zero (so "01"/"02" cannot be read as 10-12)."""
    return f"{day.month:02d}" if day.month <= 2 else str(day.month)


def nd30_date_parts(day: date | None) -> tuple[str, str, str]:
    """(dd, mm, yyyy) for "ngày dd tháng mm năm yyyy"; blanks when the letter is not issued yet."""
    if day is None:
        return BLANK, BLANK, BLANK
    return nd30_day(day), nd30_month(day), f"{day.year:04d}"


def vn_date(ts: datetime) -> str:
    """`dd/mm/yyyy` of the moment in Vietnam time."""
    return to_vn(ts).strftime("%d/%m/%Y")


def vn_appointment(ts: datetime) -> str:
    """`hh giờ mm phút, ngày dd/mm/yyyy`, the receipt-slip wording, in Vietnam time."""
    local = to_vn(ts)
    return f"{local:%H} giờ {local:%M} phút, ngày {local:%d/%m/%Y}"
