"""The oracle of the metrics tests: `indices.json` as `tthc replay` computes it (the same core code)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from tthc_adapters.calendar_file import load_calendar
from tthc_contracts import parse_dossier_event
from tthc_core.calendar import CalendarBook
from tthc_core.indices import Period
from tthc_core.replay import replay


def replayed(lines: list[str], period: Period, until: str | datetime,
             calendar: Path | None = None) -> dict[str, Any]:
    """`indices.json` of `tthc replay --until UNTIL --from P0 --to P1` over these event lines."""
    until_at = until if isinstance(until, datetime) else datetime.fromisoformat(until)
    book = CalendarBook(load_calendar(calendar))
    result = replay([parse_dossier_event(json.loads(line)) for line in lines], book, until_at, period)
    assert result.indices is not None
    return result.indices


def without_service_fields(result: dict[str, Any]) -> dict[str, Any]:
    """The metrics service's answer less what replay's indices.json does not have (`cut`, `names`)."""
    return {k: v for k, v in result.items() if k not in ("cut", "names")}
