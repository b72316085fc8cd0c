"""The life of one dossier as one-stop software records it: a fate is drawn, then its events are placed.

Every instant after the receipt is placed relative to the dossier's due date as the deadline
rules compute it (`tthc_core.deadlines.fold` over the events written so far), so a dossier meant to
be late really resolves after its due instant, one resolved early really closes on an earlier date,
and a restart after supplementation or a pause for financial obligation moves the target exactly
as the services will.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tthc_contracts import VN_TZ, format_ts, parse_dossier_event
from tthc_core.calendar import CalendarBook, WorkingCalendar
from tthc_core.deadlines import Dossier, fold

from .catalogue import Procedure
from .clock import MINUTE, ceil_minute, desk_point_days_later, floor_minute, office_after, office_point

SUPPLEMENT_REASONS = (
    "Thiếu bản sao Căn cước công dân",
    "Thiếu tờ khai theo mẫu",
    "Tờ khai chưa đủ chữ ký",
    "Thiếu bản sao Giấy chứng nhận quyền sử dụng đất",
    "Thiếu giấy ủy quyền có chứng thực",
    "Bản vẽ chưa đúng quy cách",
    "Thiếu ảnh 4x6",
    "Thiếu văn bản thỏa thuận của các bên liên quan",
)
REFUSAL_REASONS = (
    "Hồ sơ không thuộc thẩm quyền giải quyết",
    "Thành phần hồ sơ không đúng quy định",
    "Thông tin kê khai không khớp với dữ liệu quốc gia về dân cư",
)
STOP_REASONS = ("Người yêu cầu không thực hiện nghĩa vụ tài chính", "Có tranh chấp chưa được giải quyết")
WITHDRAW_REASONS = ("Công dân xin rút hồ sơ", "Tổ chức đề nghị dừng thực hiện thủ tục")
EXTENSION_REASONS = (
    "Chờ kết quả xác minh của cơ quan liên quan",
    "Chờ ý kiến thẩm định của sở, ngành",
    "Hồ sơ phức tạp, cần kiểm tra thực địa",
)
PAUSE_OTHER_REASON = "other"


def new_event_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class Fate:
    """What will happen to a dossier (drawn before its events are placed)."""

    ending: str  # refused | withdrawn | stopped | open | open_awaiting_supplement | resolved
    outcome: str | None = None  # early | on_time | late (resolved only)
    supplements: int = 0
    pause: str | None = None  # financial_obligation | other
    transfer: bool = False
    extend: bool = False
    result: str = "approved"
    returned: bool = True


def draw_fate(rng: random.Random, procedure: Procedure, channel: str) -> Fate:
    r = rng.random()
    if r < 0.03:
        return Fate("refused")
    if r < 0.05:
        return Fate("withdrawn", supplements=int(rng.random() < 0.3))
    if r < 0.06:
        return Fate("stopped", pause="financial_obligation" if procedure.financial_obligation else None)
    if r < 0.085:
        return Fate("open", transfer=procedure.transfer_to is not None and rng.random() < 0.5)
    if r < 0.10:
        return Fate("open_awaiting_supplement", supplements=1 + int(rng.random() < 0.2))
    fate = Fate("resolved")
    fate.outcome = rng.choices(("early", "on_time", "late"), weights=(0.80, 0.12, 0.08))[0]
    s = rng.random()
    fate.supplements = 2 if s < 0.03 else 1 if s < 0.14 else 0
    if procedure.financial_obligation and rng.random() < 0.45:
        fate.pause = "financial_obligation"
    elif rng.random() < 0.01:
        fate.pause = PAUSE_OTHER_REASON
    fate.transfer = procedure.transfer_to is not None and rng.random() < 0.5
    fate.extend = fate.outcome == "late" and rng.random() < 0.35
    fate.result = "denied" if rng.random() < 0.04 else "approved"
    fate.returned = rng.random() < (0.5 if channel == "online" else 0.85)
    return fate


class Story:
    """Writes one dossier's events in time order; `state()` is the deadline fold of what is written."""

    def __init__(self, rng: random.Random, book: CalendarBook, dossier_id: str, source: str, horizon: datetime):
        self.rng = rng
        self.book = book
        self.dossier_id = dossier_id
        self.source = source
        self.horizon = horizon
        self.events: list[dict[str, Any]] = []
        self._parsed: list[Any] = []
        self.cal: WorkingCalendar | None = None
        self.open_ended = False  # an event fell beyond the horizon: the story stops there

    @property
    def last_at(self) -> datetime:
        return self._parsed[-1].occurred_at

    def add(self, event_type: str, when: datetime, data: dict[str, Any] | None = None) -> bool:
        """Append an event (whole minute, strictly after the previous one); False beyond the horizon."""
        if self.open_ended:
            return False
        when = floor_minute(when)
        if self._parsed and when <= self.last_at:
            when = self.last_at + MINUTE
        if when >= self.horizon:
            self.open_ended = True
            return False
        raw: dict[str, Any] = {
            "event_id": new_event_id(self.rng),
            "type": event_type,
            "schema_version": 1,
            "occurred_at": format_ts(when),
            "source": self.source,
            "dossier_id": self.dossier_id,
        }
        if data is not None:
            raw["data"] = data
        self._parsed.append(parse_dossier_event(raw))  # every event the simulator writes is valid v1
        self.events.append(raw)
        return True

    def state(self) -> Dossier:
        st, _ = fold(self._parsed, self.book)
        assert st is not None, "state() before dossier.received"
        return st

    # -- the chapters ---------------------------------------------------------------------------
    def tell(self, fate: Fate, received: dict[str, Any], received_at: datetime, procedure: Procedure,
             transfer_to: dict[str, str] | None) -> None:
        rng = self.rng
        channel = received["channel"]
        handling = received.get("handling_agency") or received["receiving_agency"]
        self.cal = cal = self.book.for_agency(handling["code"])
        if channel == "online":
            # Submitted on the portal some time before an officer received it (same day).
            since_six = int((received_at - received_at.replace(hour=6, minute=0)).total_seconds() // 60)
            submitted = received_at - timedelta(minutes=rng.randint(5, max(since_six, 6)))
            self.add("dossier.submitted", submitted, {"channel": "online"})
        if fate.ending == "refused":
            refused_at = office_after(cal, received_at, rng.randint(5, 120)) if channel == "online" else received_at
            self.add("dossier.refused", refused_at, {"reason": rng.choice(REFUSAL_REASONS)})
            return
        self.add("dossier.received", received_at, received)
        if fate.transfer and transfer_to is not None:
            due = self.state().due_at
            t = office_point(cal, self.last_at, min(due, office_after(cal, self.last_at, 8 * 60)), rng, 0.05, 0.6)
            data: dict[str, Any] = {"to_agency": transfer_to}
            if rng.random() < 0.5:
                data["step_hours"] = float(rng.choice((8, 16, 24, 40)))
            self.add("dossier.transferred", t, data)
        for round_no in range(fate.supplements):
            last_round_pending = fate.ending == "open_awaiting_supplement" and round_no == fate.supplements - 1
            if not self._supplement_round(cal, bring_back=not last_round_pending):
                return
        if fate.ending == "open_awaiting_supplement":
            return
        # A dossier stopped for unpaid fees never resumes: the applicant did not pay.
        if fate.pause and not self._pause(cal, fate.pause, resume=fate.ending != "stopped"):
            return
        if fate.ending == "open":
            return
        if fate.ending in ("withdrawn", "stopped"):
            st = self.state()
            if st.clock == "paused":
                t = desk_point_days_later(cal, self.last_at, rng.randint(10, 20), rng)
            else:
                t = office_point(cal, self.last_at, st.due_at, rng, 0.1, 0.8)
            reasons = WITHDRAW_REASONS if fate.ending == "withdrawn" else STOP_REASONS
            self.add(f"dossier.{fate.ending}", t, {"reason": rng.choice(reasons)})
            return
        self._resolve(cal, fate, procedure)

    def _supplement_round(self, cal: WorkingCalendar, bring_back: bool) -> bool:
        """Officers ask for what is missing early in processing; the applicant brings it days later."""
        rng = self.rng
        st = self.state()
        stop_before = st.at_risk_at or st.due_at
        asked = office_point(cal, self.last_at, stop_before, rng, 0.05, 0.5)
        if asked >= st.due_at:
            return True  # no room before the due instant: this dossier skips the round
        data: dict[str, Any] = {"reason": self.rng.choice(SUPPLEMENT_REASONS)}
        if rng.random() < 0.5:
            data["requested_by"] = st.handling_agency.code
        if not self.add("dossier.supplement_requested", asked, data):
            return False
        if not bring_back:
            return True
        days = rng.choice((1, 1, 2, 2, 3, 4, 5, 7, 9))
        back = desk_point_days_later(cal, asked, days, rng)
        channel = rng.choices(("in_person", "online", "postal"), weights=(0.7, 0.25, 0.05))[0]
        return self.add("dossier.supplement_received", back, {"channel": channel})

    def _pause(self, cal: WorkingCalendar, reason: str, resume: bool = True) -> bool:
        """Waiting for the applicant's land-use fees and registration tax (NVTC): the clock stops."""
        rng = self.rng
        st = self.state()
        paused = office_point(cal, self.last_at, st.at_risk_at or st.due_at, rng, 0.2, 0.8)
        if paused >= st.due_at:
            return True
        if not self.add("dossier.paused", paused, {"reason": reason}):
            return False
        if not resume:
            return True
        back = desk_point_days_later(cal, paused, rng.choice((2, 3, 5, 7, 10, 14)), rng)
        return self.add("dossier.resumed", back)

    def _resolve(self, cal: WorkingCalendar, fate: Fate, procedure: Procedure) -> None:
        rng = self.rng
        st = self.state()
        due = st.due_at
        outcome = fate.outcome or "early"
        if fate.extend and st.at_risk_at is not None and st.at_risk_at > self.last_at:
            # The agency sends the apology and a new appointment (Mẫu 04): half of them in time (by the
            # at-risk instant, 1 working day before due), the others later, before the due instant.
            if rng.random() < 0.5:
                early_edge = cal.subtract(st.at_risk_at, 4 * 3_600_000_000)
                asked = office_point(cal, max(self.last_at, early_edge), st.at_risk_at, rng, 0.0, 1.0)
            else:
                asked = office_point(cal, max(self.last_at, st.at_risk_at), due, rng, 0.05, 0.8)
            value, unit = procedure.duration
            extra_days = max(1, math.ceil(value / 2)) if unit == "working_days" else 1
            new_due = cal.add_working_days(due, min(extra_days, 10))
            self.add("dossier.extended", asked, {"new_due_at": format_ts(new_due), "reason": rng.choice(EXTENSION_REASONS)})
        closed_at = self._closing_instant(cal, outcome, due, st.extended_due_at)
        if not self.add("dossier.resolved", closed_at, {"result": fate.result}):
            return
        if fate.returned:
            self.add("dossier.returned", office_after(cal, self.last_at, rng.choice((5, 30, 60, 240, 480, 960))))

    def _closing_instant(self, cal: WorkingCalendar, outcome: str, due: datetime, extended: datetime | None) -> datetime:
        rng = self.rng
        last = self.last_at
        due_day_start = datetime.combine(due.astimezone(VN_TZ).date(), datetime.min.time(), tzinfo=VN_TZ)
        if outcome == "early" and cal.between(ceil_minute(last + MINUTE), due_day_start) > 60 * 60_000_000:
            # Most dossiers are done well ahead; a few the day before.
            return office_point(cal, last + MINUTE, due_day_start, rng, 0.15, 0.999)
        if outcome in ("early", "on_time") and due > last + MINUTE:
            lower = max(last + MINUTE, cal.opening(due.astimezone(VN_TZ).date()))
            return office_point(cal, lower, due, rng, 0.1, 1.0)
        # Late: mostly by hours or a day or two, sometimes by a week or more.
        if extended is not None and rng.random() < 0.8:
            return office_point(cal, due + MINUTE, extended, rng, 0.1, 0.95)
        band = rng.choices(((60, 480), (480, 1440), (1440, 4800)), weights=(0.55, 0.33, 0.12))[0]
        late_minutes = rng.uniform(*band)
        return office_after(cal, max(due, last), late_minutes)
