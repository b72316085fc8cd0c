"""`POST /v1/dvcqg` in the national portal's own shapes (dvcqg.md): the request bodies `DongBoHoSoMC` and
`CapNhatTienDoHoSoMC` as models for the OpenAPI document (intake reads the body itself and
`tthc_contracts.dvcqg.translate` checks it: these models describe, they do not validate), and the answers
in the portal's convention, `error_code` "0" or "-1", instead of the common `{"errors"}` shape.

The examples are lines of the worked example `docs/dvcqg/payloads.jsonl` (`dvcqg_examples.json`, checked
against it by the tests).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from tthc_common.errors import Problem
from tthc_contracts.dvcqg import INSTANT_FORMS, MAX_ITEMS, PROGRESS, SNAPSHOT

EXAMPLES_FILE = Path(__file__).with_name("dvcqg_examples.json")

# -- answers ----------------------------------------------------------------------------------------


class DvcqgProblem(BaseModel):
    """One thing wrong with the request, named the portal's way."""

    index: int | None = Field(description="position of the item in `data`; null for the request itself")
    field: str | None = Field(description="the DVCQG field, e.g. `NgayTiepNhan` or `DanhSachHoSoBoSung[1].NgayBoSung`; "
                                          "null when no field is at fault")
    reason: str = Field(description="what is wrong, in plain words")


class DvcqgAccepted(BaseModel):
    """Every event the request implies is durably in Kafka (or was accepted before); its steps are kept."""

    error_code: Literal["0"] = Field(description='"0": accepted (the portal\'s convention)')
    message: str
    events: int = Field(description="new events, published")
    duplicates: int = Field(description="events already accepted before (same ids), not published again")


class DvcqgRefusal(BaseModel):
    """Nothing of the request was published, nor any of its steps kept (all or nothing)."""

    error_code: Literal["-1"] = Field(description='"-1": refused (the portal\'s convention)')
    message: str
    errors: list[DvcqgProblem]


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def accepted_answer(events: int, duplicates: int, items: int) -> JSONResponse:
    message = (f"{_count(items, 'item')} accepted: {_count(events, 'new event')} published, "
               f"{_count(duplicates, 'event')} accepted before")
    answer = DvcqgAccepted(error_code="0", message=message, events=events, duplicates=duplicates)
    return JSONResponse(answer.model_dump(), status_code=202)


def refusal_answer(status: int, problems: Sequence[Problem], headers: dict[str, str] | None = None) -> JSONResponse:
    first = problems[0]
    where = "".join(f"{part}: " for part in (
        None if first.index is None else f"item {first.index}", first.field) if part is not None)
    if len(problems) == 1:
        message = where + first.reason
    else:
        message = f"{len(problems)} problems (first: {where}{first.reason}); nothing of the request was published"
    answer = DvcqgRefusal(error_code="-1", message=message,
                          errors=[DvcqgProblem(index=p.index, field=p.field, reason=p.reason) for p in problems])
    return JSONResponse(answer.model_dump(), status_code=status, headers=headers)


# -- request bodies ---------------------------------------------------------------------------------
def _own_name(name: str, _info: Any) -> str:
    return name  # the portal's field names as they are (not "Mahoso")


_INSTANT_PATTERN = (r"^(\d{14}|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d{2}:\d{2})?)?$")
Instant = Annotated[str | None, Field(
    pattern=_INSTANT_PATTERN,
    description=f"{INSTANT_FORMS}; without an offset, Vietnam time (+07:00); \"\" or null: absent")]
Code = Annotated[str | float, Field(description="a code, as text or as a number")]
Text = Annotated[str, Field(min_length=1)]


def _number_code(low: int, high: int, what: str) -> Any:
    choices = "|".join(str(n) for n in range(low, high + 1))
    return Annotated[Annotated[int, Field(ge=low, le=high)] | Annotated[str, Field(pattern=rf"^\s*({choices})\s*$")],
                     Field(description=f"{what}; a number or its digits as text")]


DossierStatus = _number_code(1, 10, "the dossier's status (2 received, 3 refused, 5 awaiting documents, 7 withdrawn, "
                                    "8 stopped, 9 resolved, 10 returned...)")
ApplicantKind = _number_code(1, 2, "1 citizen, 2 organization; absent: citizen")
Channel = _number_code(1, 3, "1 in person, 2 online, 3 postal; absent: in person")


class DvcqgHoSoBoSung(BaseModel):
    """One supplementation round of `DanhSachHoSoBoSung`."""

    model_config = ConfigDict(extra="allow", field_title_generator=_own_name)
    NgayBoSung: Instant = Field(description="when the documents were asked for (required)")
    NoiDungBoSung: str | None = Field(default=None, description="what was asked for")
    NgayTiepNhanBoSung: Instant = Field(default=None, description="when the applicant brought them")


class DvcqgHoSo(BaseModel):
    """A `DongBoHoSoMC` item: the dossier as the one-stop system knows it now (dvcqg.md). Unknown fields are
    ignored."""

    model_config = ConfigDict(extra="allow", field_title_generator=_own_name)
    MaHoSo: Code = Field(description="the dossier's code, 1-64 characters (v1 `dossier_id`)")
    TrangThaiHoSo: DossierStatus  # type: ignore[valid-type]
    MaTTHC: Code = Field(description="the procedure's code; must be in the catalogue (INTAKE_DVCQG_CATALOGUE)")
    TenTTHC: Text
    MaLinhVuc: Code
    TenLinhVuc: Text
    DonViXuLy: Code = Field(description="the handling agency's code, named from the catalogue")
    ChuHoSo: Text = Field(description="the applicant (personal data: never logged)")
    LoaiDoiTuong: ApplicantKind | None = None  # type: ignore[valid-type]
    SoDienThoai: Code | None = None
    Email: str | None = None
    KenhThucHien: Channel | None = None  # type: ignore[valid-type]
    NgayNopHoSo: Instant = None
    NgayTiepNhan: Instant = None
    NgayHenTra: Instant = Field(default=None, description="the appointment printed on the receipt slip")
    NgayTuChoi: Instant = Field(default=None, description="required when TrangThaiHoSo is 3")
    NgayKetThucXuLy: Instant = Field(default=None, description="resolution; or withdrawal / stop (7, 8)")
    NgayTra: Instant = None
    GhiChu: str | None = Field(default=None, description="the reason of a refusal (TrangThaiHoSo 3)")
    DanhSachHoSoBoSung: list[DvcqgHoSoBoSung] | None = None


class DvcqgTienDo(BaseModel):
    """A `CapNhatTienDoHoSoMC` item: one processing step. Intake keeps every step it accepted per dossier; a
    step 6 (financial obligation) pauses the clock, the next 2, 4 or 5 resumes it."""

    model_config = ConfigDict(extra="allow", field_title_generator=_own_name)
    MaHoSo: Code
    ThoiDiemXuLy: Instant = Field(description="when the step happened (required)")
    TrangThai: Annotated[int | Annotated[str, Field(pattern=r"^\s*\d+\s*$")], Field(
        description="the step's status; 6 waits for the applicant's financial obligation")]
    NguoiXuLy: str | None = None
    ChucDanh: str | None = None
    PhongBanXuLy: str | None = None
    NoiDungXuLy: str | None = None
    NgayBatDau: Instant = None
    NgayKetThucTheoQuyDinh: Instant = None


class DvcqgSnapshotBody(BaseModel):
    model_config = ConfigDict(extra="allow", field_title_generator=_own_name, title="DongBoHoSoMC")
    service: Literal["DongBoHoSoMC"]
    isUpdating: bool | None = Field(default=None, description="as the portal takes it; not used")
    data: list[DvcqgHoSo] = Field(min_length=1, max_length=MAX_ITEMS)


class DvcqgProgressBody(BaseModel):
    model_config = ConfigDict(extra="allow", field_title_generator=_own_name, title="CapNhatTienDoHoSoMC")
    service: Literal["CapNhatTienDoHoSoMC"]
    data: list[DvcqgTienDo] = Field(min_length=1, max_length=MAX_ITEMS)


DvcqgBody = Annotated[DvcqgSnapshotBody | DvcqgProgressBody, Field(discriminator="service")]


def body_components(ref_template: str) -> dict[str, dict[str, Any]]:
    """The OpenAPI components of the request body: `DvcqgBody` (either service) and its models."""
    schema = TypeAdapter(DvcqgBody).json_schema(ref_template=ref_template)
    defs = schema.pop("$defs", {})
    return {**defs, "DvcqgBody": {**schema, "description": (
        f"`{SNAPSHOT}` (dossier snapshots) or `{PROGRESS}` (processing steps), 1 to {MAX_ITEMS} items")}}


def request_body_openapi(ref_template: str) -> dict[str, Any]:
    examples = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
    return {
        "required": True,
        "description": ("The body as the national portal takes it (dvcqg.md): each item is translated into v1 "
                        "events; any refused item refuses the whole request."),
        "content": {"application/json": {"schema": {"$ref": ref_template.format(model="DvcqgBody")},
                                         "examples": examples}},
    }
