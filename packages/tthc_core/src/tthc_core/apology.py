"""When an apology draft is owed, and when it is cancelled (`spec/apology.md`). Pure.

`ApologyLedger` holds one dossier's drafts. It takes the deadline service's derived events and the
one-stop software's `dossier.extended`, and returns the apology events to publish. Exactly one
draft per (dossier, kind, due_at): the draft's id is a UUIDv5 of that triple, and a trigger seen
again (redelivery, restart, replay) finds the draft already there and produces nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from tthc_contracts import derived_id, format_ts
from tthc_contracts.derived import (
    ApologyCancelled,
    ApologyDrafted,
    ApologyIssued,
    CancelledData,
    DraftedData,
    IssuedData,
)
from tthc_contracts.events import Agency, Duration

from .calendar import CalendarBook

APOLOGY_SOURCE = "tthc-apology"
DraftStatus = Literal["draft", "cancelled", "issued"]


def apology_id_for(dossier_id: str, kind: str, due_at: datetime) -> str:
    return derived_id("apology", dossier_id, kind, format_ts(due_at))


def proposed_due_at(book: CalendarBook, agency_code: str, due_at: datetime, duration: Duration | None) -> datetime:
    """`due_at` + ⌈N/2⌉ working days for N working days (at least 1), else + 1 working day."""
    cal = book.for_agency(agency_code)
    days = 1
    if duration is not None and duration.unit == "working_days":
        days = max(1, math.ceil(duration.value / 2))
    return cal.add_working_days(due_at, days)


@dataclass
class Draft:
    apology_id: str
    dossier_id: str
    kind: str
    due_at: datetime
    agency: Agency
    proposed_due_at: datetime
    status: DraftStatus = "draft"
    drafted_at: datetime | None = None
    cancel_reason: str | None = None
    number: str | None = None
    issued_at: datetime | None = None
    new_due_at: datetime | None = None
    reason: str | None = None

    def row(self, file: str | None = None) -> dict[str, Any]:
        """One line of `apologies.jsonl` (interfaces.md)."""
        return {
            "apology_id": self.apology_id,
            "dossier_id": self.dossier_id,
            "kind": self.kind,
            "status": self.status,
            "agency": self.agency.code,
            "due_at": format_ts(self.due_at),
            "proposed_due_at": format_ts(self.proposed_due_at),
            "file": file,
        }


def document_url(apology_id: str) -> str:
    return f"/v1/apologies/{apology_id}.docx"


@dataclass
class ApologyLedger:
    """One dossier's apology drafts and whether an apology was already given."""

    dossier_id: str
    drafts: list[Draft] = field(default_factory=list)
    apology_given_at: datetime | None = None  # dossier.extended or apology.issued: the one allowed apology

    def _find(self, kind: str, due_at: datetime) -> Draft | None:
        return next((d for d in self.drafts if d.kind == kind and d.due_at == due_at), None)

    def _draft(self, book: CalendarBook, kind: str, ev: Any) -> list[Any]:
        data = ev.data
        if self._find(kind, data.due_at) is not None:
            return []
        agency = data.handling_agency
        if agency is None:
            return []  # nobody to address it from (the deadline service always names the agency)
        draft = Draft(
            apology_id=apology_id_for(self.dossier_id, kind, data.due_at),
            dossier_id=self.dossier_id,
            kind=kind,
            due_at=data.due_at,
            agency=agency,
            proposed_due_at=proposed_due_at(book, agency.code, data.due_at, getattr(data, "duration", None)),
            drafted_at=ev.occurred_at,
        )
        self.drafts.append(draft)
        return [
            ApologyDrafted(
                event_id=derived_id("apology.drafted", draft.apology_id),
                occurred_at=ev.occurred_at,
                source=APOLOGY_SOURCE,
                dossier_id=self.dossier_id,
                data=DraftedData(
                    apology_id=draft.apology_id,
                    kind=kind,  # type: ignore[arg-type]
                    agency=agency,
                    due_at=draft.due_at,
                    proposed_due_at=draft.proposed_due_at,
                    document_url=document_url(draft.apology_id),
                ),
            )
        ]

    def _cancel(self, at: datetime, reason: str, keep_due_at: datetime | None = None) -> list[Any]:
        out = []
        for d in self.drafts:
            if d.status != "draft" or (keep_due_at is not None and d.due_at == keep_due_at):
                continue
            d.status, d.cancel_reason = "cancelled", reason
            out.append(
                ApologyCancelled(
                    event_id=derived_id("apology.cancelled", d.apology_id),
                    occurred_at=at,
                    source=APOLOGY_SOURCE,
                    dossier_id=self.dossier_id,
                    data=CancelledData(apology_id=d.apology_id, reason=reason),
                )
            )
        return out

    def on_deadline_event(self, book: CalendarBook, ev: Any) -> list[Any]:
        t = ev.type
        given = self.apology_given_at
        if t in ("deadline.at_risk", "deadline.overdue") and given is not None and given <= ev.occurred_at:
            # After the one apology the law allows (the extension), there is no further at-risk moment;
            # a live deadline service may have announced one before it heard of the extension.
            return []
        if t == "deadline.at_risk":
            return self._draft(book, "at_risk", ev)
        if t == "deadline.overdue":
            if ev.data.extended:
                return []  # the one apology the law allows was already sent with the extension
            if any(d.due_at == ev.data.due_at for d in self.drafts):
                return []
            return self._draft(book, "overdue", ev)
        if t == "deadline.closed":
            if ev.data.outcome in ("early", "on_time"):
                return self._cancel(ev.occurred_at, f"the dossier closed {ev.data.outcome.replace('_', ' ')}")
            if self.apology_given_at is None and ev.data.handling_agency is not None:
                return self._draft(book, "late_result", ev)
            return []
        if t == "deadline.scheduled" and ev.data.basis in ("supplement_restart", "resumed", "calendar_change"):
            return self._cancel(ev.occurred_at, "the due date moved", keep_due_at=ev.data.due_at)
        return []

    def on_extended(self, ev: Any) -> list[Any]:
        """The one-stop software recorded the apology and the new appointment itself."""
        if self.apology_given_at is None or ev.occurred_at < self.apology_given_at:
            self.apology_given_at = ev.occurred_at
        return self._cancel(ev.occurred_at, "the apology was recorded with the extension")

    def issue(self, apology_id: str, number: str, issued_at: datetime, new_due_at: datetime, reason: str) -> Any:
        d = next(d for d in self.drafts if d.apology_id == apology_id)
        d.status, d.number, d.issued_at, d.new_due_at, d.reason = "issued", number, issued_at, new_due_at, reason
        if self.apology_given_at is None or issued_at < self.apology_given_at:
            self.apology_given_at = issued_at
        return ApologyIssued(
            event_id=derived_id("apology.issued", apology_id),
            occurred_at=issued_at,
            source=APOLOGY_SOURCE,
            dossier_id=self.dossier_id,
            data=IssuedData(
                apology_id=apology_id, number=number, issued_at=issued_at, new_due_at=new_due_at, agency=d.agency
            ),
        )
