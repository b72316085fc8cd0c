"""Letter numbers "NN/PXL": per agency and year, in issuing order, never handed out twice.

The counter row of (agency, year) is locked for the rest of the issuing transaction (PostgreSQL:
SELECT ... FOR UPDATE; SQLite: the whole transaction holds the write lock from BEGIN IMMEDIATE), so
two officers issuing at the same moment get consecutive numbers. A number an officer typed by hand
is skipped by the counter later; the unique constraint (agency, year, number) is the last guard.
Called only by `units.issue_letter`, inside its transaction.
"""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import select
from sqlmodel import Session
from tthc_common.db import insert_ignoring_conflict

from .models import Apology, ApologyNumberCounter

SUFFIX = "/PXL"
MAX_NUMBER_CHARS = 32
_DIGITS = re.compile(r"^\d{1,6}$")


def format_number(n: int) -> str:
    return f"{n:02d}{SUFFIX}"


def normalize_number(text: str) -> str:
    """What an officer typed: "7" or "07" -> "07/PXL"; anything else is kept as written (trimmed, NFC)."""
    text = unicodedata.normalize("NFC", text).strip()
    if _DIGITS.match(text):
        return format_number(int(text))
    return text


def number_taken(session: Session, agency_code: str, year: int, number: str) -> bool:
    query = select(Apology.apology_id).where(
        Apology.agency_code == agency_code, Apology.number_year == year, Apology.number == number
    )
    return session.execute(query.limit(1)).first() is not None


def take_next_number(session: Session, agency_code: str, year: int) -> str:
    insert_ignoring_conflict(session, ApologyNumberCounter,
                             {"agency_code": agency_code, "year": year, "last_number": 0})
    query = (
        select(ApologyNumberCounter)
        .where(ApologyNumberCounter.agency_code == agency_code, ApologyNumberCounter.year == year)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    counter = session.scalars(query).one()
    n = counter.last_number + 1
    while number_taken(session, agency_code, year, format_number(n)):
        n += 1  # typed by hand earlier: never hand it out again
    counter.last_number = n
    session.add(counter)
    return format_number(n)
