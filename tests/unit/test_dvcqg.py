"""The national portal's payloads as v1 events (dvcqg.md): the translation table row by row, values,
refusals, deterministic ids, the step pairing, the catalogue, and `tthc dvcqg`."""

from __future__ import annotations

import json
import uuid

import pytest

from tthc_adapters.catalogue_file import load_catalogue
from tthc_adapters.cli import main
from tthc_contracts import parse_dossier_event
from tthc_contracts.dvcqg import CatalogueError, ProgressStep, parse_catalogue, progress_dossiers, translate

SOURCE = "motcua-lang-son"
CATALOGUE_TEXT = """\
procedures:
  "1.001234": {duration: {value: 10, unit: working_days}}
  "1.004227": {duration: {value: 30, unit: calendar_days}, supplement_mode: pause}
agencies:
  "000.00.12.H10": "Sở Tư pháp tỉnh Lạng Sơn"
"""
CATALOGUE = parse_catalogue(CATALOGUE_TEXT)


def hoso(**fields):
    """A DongBoHoSoMC item of a dossier received at the desk; `fields` override (None removes)."""
    item = {
        "MaHoSo": "000.00.12.H10-260302-0001",
        "TrangThaiHoSo": 2,
        "MaTTHC": "1.001234",
        "TenTTHC": "Cấp Phiếu lý lịch tư pháp",
        "MaLinhVuc": "G13-TP01",
        "TenLinhVuc": "Lý lịch tư pháp",
        "DonViXuLy": "000.00.12.H10",
        "ChuHoSo": "Nguyễn Văn An",
        "NgayTiepNhan": "20260302090000",
    }
    item.update(fields)
    return {k: v for k, v in item.items() if v is not None}


def snapshot(*items, updating=False):
    return {"service": "DongBoHoSoMC", "isUpdating": updating, "data": list(items)}


def progress(*items):
    return {"service": "CapNhatTienDoHoSoMC", "data": list(items)}


def step(at, status, dossier="000.00.12.H10-260302-0001", **extra):
    return {"MaHoSo": dossier, "ThoiDiemXuLy": at, "TrangThai": status, **extra}


def events_of(body, kept=None):
    result = translate(body, CATALOGUE, SOURCE, kept)
    assert result.errors == []
    for e in result.events:
        parse_dossier_event(e)  # every derived event is a valid v1 event
    return result.events


def kinds(body, kept=None):
    return [(e["type"], e["occurred_at"]) for e in events_of(body, kept)]


def errors_of(body, kept=None):
    result = translate(body, CATALOGUE, SOURCE, kept)
    assert result.events == [] and result.new_steps == {}  # all or nothing
    return [(e["index"], e["field"]) for e in result.errors]


# -- the table, row by row -----------------------------------------------------------------------------
def test_a_receipt_at_the_desk_gives_dossier_received_with_its_data():
    (received,) = events_of(
        snapshot(
            hoso(
                NgayHenTra="20260316090000",
                SoDienThoai="0912345678",
                Email="an@example.vn",
                LoaiDoiTuong="2",
                KenhThucHien=1,
            )
        )
    )
    assert received["type"] == "dossier.received" and received["occurred_at"] == "2026-03-02T09:00:00+07:00"
    assert received["source"] == SOURCE and received["dossier_id"] == "000.00.12.H10-260302-0001"
    assert received["data"] == {
        "procedure": {
            "code": "1.001234",
            "name": "Cấp Phiếu lý lịch tư pháp",
            "field_code": "G13-TP01",
            "field_name": "Lý lịch tư pháp",
        },
        "receiving_agency": {"code": "000.00.12.H10", "name": "Sở Tư pháp tỉnh Lạng Sơn"},
        "handling_agency": {"code": "000.00.12.H10", "name": "Sở Tư pháp tỉnh Lạng Sơn"},
        "channel": "in_person",
        "duration": {"value": 10, "unit": "working_days"},
        "applicant": {
            "kind": "organization",
            "name": "Nguyễn Văn An",
            "phone": "0912345678",
            "email": "an@example.vn",
        },
        "appointment_at": "2026-03-16T09:00:00+07:00",
    }


def test_the_catalogue_gives_duration_and_supplement_mode_and_an_unnamed_agency_is_its_code():
    (received,) = events_of(snapshot(hoso(MaTTHC="1.004227", DonViXuLy="000.00.20.H10")))
    assert received["data"]["duration"] == {"value": 30, "unit": "calendar_days"}
    assert received["data"]["supplement_mode"] == "pause"
    assert received["data"]["handling_agency"] == {"code": "000.00.20.H10", "name": "000.00.20.H10"}
    assert "appointment_at" not in received["data"]


@pytest.mark.parametrize(
    "code, channel",
    [(1, "in_person"), (2, "online"), ("3", "postal"), (None, "in_person"), ("", "in_person")],
)
def test_kenh_thuc_hien_gives_the_channel(code, channel):
    (received,) = [e for e in events_of(snapshot(hoso(KenhThucHien=code))) if e["type"] == "dossier.received"]
    assert received["data"]["channel"] == channel


@pytest.mark.parametrize("code, kind", [(1, "citizen"), ("2", "organization"), (None, "citizen")])
def test_loai_doi_tuong_gives_the_applicant_kind(code, kind):
    (received,) = events_of(snapshot(hoso(LoaiDoiTuong=code)))
    assert received["data"]["applicant"]["kind"] == kind


def test_an_online_submission_gives_dossier_submitted_and_only_online_does():
    online = snapshot(hoso(KenhThucHien=2, NgayNopHoSo="20260301201500"))
    assert kinds(online) == [
        ("dossier.submitted", "2026-03-01T20:15:00+07:00"),
        ("dossier.received", "2026-03-02T09:00:00+07:00"),
    ]
    assert events_of(online)[0]["data"] == {"channel": "online"}
    assert kinds(snapshot(hoso(KenhThucHien=1, NgayNopHoSo="20260301201500"))) == [
        ("dossier.received", "2026-03-02T09:00:00+07:00")
    ]


def test_status_1_is_submitted_only_never_received():
    body = snapshot(hoso(TrangThaiHoSo=1, KenhThucHien=2, NgayNopHoSo="20260301201500"))
    assert kinds(body) == [("dossier.submitted", "2026-03-01T20:15:00+07:00")]


def test_a_status_without_ngay_tiep_nhan_is_not_a_receipt():
    assert kinds(snapshot(hoso(NgayTiepNhan=None))) == []


def test_status_3_is_a_refusal_with_gichu_or_the_default_reason():
    body = snapshot(hoso(TrangThaiHoSo=3, NgayTuChoi="20260302100000", GhiChu="Hồ sơ không thuộc thẩm quyền"))
    (refused,) = events_of(body)  # never received, even with NgayTiepNhan
    assert (refused["type"], refused["occurred_at"]) == ("dossier.refused", "2026-03-02T10:00:00+07:00")
    assert refused["data"] == {"reason": "Hồ sơ không thuộc thẩm quyền"}
    (default,) = events_of(snapshot(hoso(TrangThaiHoSo="3", NgayTuChoi="20260302100000")))
    assert default["data"] == {"reason": "Không được tiếp nhận"}


def test_supplementation_rounds_in_order_of_ngay_bo_sung():
    body = snapshot(
        hoso(
            TrangThaiHoSo=4,
            DanhSachHoSoBoSung=[
                {
                    "NgayBoSung": "20260310090000",
                    "NoiDungBoSung": "Thiếu ảnh 4x6",
                },  # the second round, sent first
                {
                    "NgayBoSung": "20260304100000",
                    "NoiDungBoSung": "Thiếu tờ khai",
                    "NgayTiepNhanBoSung": "20260309140000",
                },
            ],
        )
    )
    evs = events_of(body)
    assert [(e["type"], e["occurred_at"], e["data"]) for e in evs[1:]] == [
        ("dossier.supplement_requested", "2026-03-04T10:00:00+07:00", {"reason": "Thiếu tờ khai"}),
        ("dossier.supplement_received", "2026-03-09T14:00:00+07:00", {"channel": "in_person"}),
        ("dossier.supplement_requested", "2026-03-10T09:00:00+07:00", {"reason": "Thiếu ảnh 4x6"}),
    ]
    # Round numbers are in the ids: round 1 and round 2 of the same day would still be two events.
    assert evs[1]["event_id"] == str(
        uuid.uuid5(
            uuid.UUID("0b6f3a2e-5d1c-4c8e-9a7f-3e2d1c0b9a88"),
            f"{SOURCE}/000.00.12.H10-260302-0001/dossier.supplement_requested/1/20260304100000",
        )
    )


@pytest.mark.parametrize(
    "status, dates, expected",
    [
        (9, {"NgayKetThucXuLy": "20260313150000"}, [("dossier.resolved", "2026-03-13T15:00:00+07:00")]),
        (9, {}, []),
        (
            10,
            {"NgayKetThucXuLy": "20260313150000", "NgayTra": "20260316090000"},
            [
                ("dossier.resolved", "2026-03-13T15:00:00+07:00"),
                ("dossier.returned", "2026-03-16T09:00:00+07:00"),
            ],
        ),
        (10, {"NgayTra": "20260316090000"}, [("dossier.returned", "2026-03-16T09:00:00+07:00")]),
        (
            7,
            {"NgayKetThucXuLy": "20260305100000", "NgayTra": "20260306100000"},
            [("dossier.withdrawn", "2026-03-05T10:00:00+07:00")],
        ),
        (7, {"NgayTra": "20260306100000"}, [("dossier.withdrawn", "2026-03-06T10:00:00+07:00")]),
        (8, {"NgayKetThucXuLy": "20260305100000"}, [("dossier.stopped", "2026-03-05T10:00:00+07:00")]),
        (8, {"NgayTra": ""}, None),  # neither date: refused
        (5, {"NgayKetThucXuLy": "20260305100000"}, []),  # processing: no closing event
    ],
)
def test_closing_statuses(status, dates, expected):
    body = snapshot(hoso(TrangThaiHoSo=status, **dates))
    if expected is None:
        assert errors_of(body) == [(0, "NgayKetThucXuLy")]
        return
    evs = kinds(body)
    assert evs[0] == ("dossier.received", "2026-03-02T09:00:00+07:00") and evs[1:] == expected
    if expected and expected[0][0] == "dossier.resolved":
        assert events_of(body)[1]["data"] == {"result": "approved"}


# -- values -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("20260302090000", "2026-03-02T09:00:00+07:00"),
        ("2026-03-02T09:00:00", "2026-03-02T09:00:00+07:00"),  # no offset: Vietnam time
        ("2026-03-02T09:00:00.250", "2026-03-02T09:00:00.250000+07:00"),
        ("2026-03-02T09:00:00.2500000", "2026-03-02T09:00:00.250000+07:00"),  # .NET's seven digits
        ("2026-03-02T09:00:00+07:00", "2026-03-02T09:00:00+07:00"),
        ("2026-03-02T02:00:00Z", "2026-03-02T09:00:00+07:00"),
        ("2026-03-02T04:00:00+02:00", "2026-03-02T09:00:00+07:00"),
        (" 20260302090000 ", "2026-03-02T09:00:00+07:00"),
    ],
)
def test_both_instant_forms(text, expected):
    (received,) = events_of(snapshot(hoso(NgayTiepNhan=text)))
    assert received["occurred_at"] == expected


@pytest.mark.parametrize(
    "value",
    [
        "02/03/2026 09:00:00",
        "2026-03-02 09:00:00",
        "20260302",
        "2026-03-02T09:00",
        "20261302090000",
        "2026-02-30T09:00:00",
        "2026-03-02T09:00:00+15:00",
        20260302090000,
        True,
        ["20260302090000"],
    ],
)
def test_anything_else_is_refused_with_the_field_named(value):
    assert errors_of(snapshot(hoso(NgayTiepNhan=value))) == [(0, "NgayTiepNhan")]
    assert errors_of(snapshot(hoso(NgayHenTra=value))) == [(0, "NgayHenTra")]


@pytest.mark.parametrize("absent", ["", "  ", None, "missing"])
def test_absent_values(absent):
    item = hoso(NgayHenTra=absent, SoDienThoai=absent, Email=absent, GhiChu=absent)
    if absent == "missing":
        item = hoso()
    (received,) = events_of(snapshot(item))
    assert "appointment_at" not in received["data"]
    assert received["data"]["applicant"] == {"kind": "citizen", "name": "Nguyễn Văn An"}


def test_codes_may_be_strings_or_numbers():
    as_text = events_of(snapshot(hoso(TrangThaiHoSo="10", KenhThucHien="2", NgayTra="20260316090000")))
    as_numbers = events_of(snapshot(hoso(TrangThaiHoSo=10, KenhThucHien=2.0, NgayTra="20260316090000")))
    assert as_text == as_numbers
    catalogue = parse_catalogue('procedures:\n  "12345": {duration: {value: 2, unit: working_days}}\n')
    numeric = translate(snapshot(hoso(MaTTHC=12345)), catalogue, SOURCE)
    assert numeric.events[0]["data"]["procedure"]["code"] == "12345"


def test_unknown_fields_are_ignored():
    assert events_of(snapshot(hoso(DiaChiThuongTru="Lạng Sơn", TruongMoi={"x": 1}))) == events_of(
        snapshot(hoso())
    )


# -- refusals -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field",
    ["MaHoSo", "TrangThaiHoSo", "MaTTHC", "TenTTHC", "MaLinhVuc", "TenLinhVuc", "DonViXuLy", "ChuHoSo"],
)
@pytest.mark.parametrize("absent", ["", None])
def test_a_refusal_for_each_required_snapshot_field(field, absent):
    item = hoso(**{field: None}) if absent is None else hoso(**{field: absent})
    result = translate(snapshot(hoso(MaHoSo="other"), item), CATALOGUE, SOURCE)
    assert [(e["index"], e["field"], e["reason"]) for e in result.errors] == [(1, field, "required")]
    assert result.events == []  # the good item is not published either


def test_a_refusal_needs_ngay_tu_choi():
    assert errors_of(snapshot(hoso(TrangThaiHoSo=3))) == [(0, "NgayTuChoi")]


def test_a_procedure_not_in_the_catalogue_is_refused():
    result = translate(snapshot(hoso(MaTTHC="9.999999")), CATALOGUE, SOURCE)
    assert result.errors == [{"index": 0, "field": "MaTTHC", "reason": "not in the procedure catalogue"}]


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"TrangThaiHoSo": 11}, "TrangThaiHoSo"),
        ({"TrangThaiHoSo": "hai"}, "TrangThaiHoSo"),
        ({"KenhThucHien": 4}, "KenhThucHien"),
        ({"LoaiDoiTuong": 3}, "LoaiDoiTuong"),
        ({"ChuHoSo": 42}, "ChuHoSo"),
        ({"MaHoSo": "X" * 65}, "MaHoSo"),
        ({"DanhSachHoSoBoSung": "none"}, "DanhSachHoSoBoSung"),
        (
            {"DanhSachHoSoBoSung": [{"NgayBoSung": "20260304100000"}, {"NoiDungBoSung": "x"}]},
            "DanhSachHoSoBoSung[1].NgayBoSung",
        ),
        (
            {"DanhSachHoSoBoSung": [{"NgayBoSung": "20260304100000", "NgayTiepNhanBoSung": "hôm nay"}]},
            "DanhSachHoSoBoSung[0].NgayTiepNhanBoSung",
        ),
    ],
)
def test_bad_values_are_refused_by_field(fields, field):
    assert errors_of(snapshot(hoso(**fields))) == [(0, field)]


@pytest.mark.parametrize(
    "body, field",
    [
        ([], "(body)"),
        ({"service": "GuiHoSo", "data": [hoso()]}, "service"),
        ({"service": "DongBoHoSoMC", "data": {}}, "data"),
        ({"service": "DongBoHoSoMC", "data": []}, "data"),
        ({"service": "DongBoHoSoMC", "data": [hoso()] * 1001}, "data"),
    ],
)
def test_bad_bodies_are_refused_whole(body, field):
    assert errors_of(body) == [(None, field)]


def test_a_thousand_items_are_accepted_and_an_item_that_is_not_an_object_is_refused():
    assert len(events_of(snapshot(*[hoso(MaHoSo=f"D-{i}") for i in range(1000)]))) == 1000
    assert errors_of(snapshot(hoso(), "D-2")) == [(1, "(item)")]


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"NgayHenTra": "20400316090000"}, "NgayHenTra"),  # v1: within 10 years of the receipt
        ({"TrangThaiHoSo": 3, "NgayTuChoi": "20260302100000", "GhiChu": "x" * 1001}, "GhiChu"),
        ({"TenTTHC": "x" * 1001}, "TenTTHC"),
        (
            {
                "DanhSachHoSoBoSung": [
                    {"NgayBoSung": "20260305100000"},
                    {"NgayBoSung": "20260304100000", "NoiDungBoSung": "x" * 1001},
                ]
            },
            "DanhSachHoSoBoSung[1].NoiDungBoSung",  # its position in the list, though it is round 1
        ),
    ],
)
def test_a_v1_refusal_of_a_derived_event_names_the_dvcqg_field_it_came_from(fields, field):
    [(index, name)] = errors_of(snapshot(hoso(MaHoSo="D-0"), hoso(**fields)))
    assert (index, name) == (1, field)


def test_each_derived_event_says_which_item_and_which_instant_field_it_came_from():
    body = snapshot(
        hoso(MaHoSo="D-0"),
        hoso(
            TrangThaiHoSo=10,
            KenhThucHien=2,
            NgayNopHoSo="20260301200000",
            DanhSachHoSoBoSung=[{"NgayBoSung": "20260305100000"}, {"NgayBoSung": "20260304100000"}],
            NgayKetThucXuLy="20260320100000",
            NgayTra="20260321100000",
        ),
    )
    result = translate(body, CATALOGUE, SOURCE)
    assert [(e["type"], o.index, o.field("occurred_at")) for e, o in zip(result.events, result.origins)] == [
        ("dossier.received", 0, "NgayTiepNhan"),
        ("dossier.submitted", 1, "NgayNopHoSo"),
        ("dossier.received", 1, "NgayTiepNhan"),
        ("dossier.supplement_requested", 1, "DanhSachHoSoBoSung[1].NgayBoSung"),
        ("dossier.supplement_requested", 1, "DanhSachHoSoBoSung[0].NgayBoSung"),
        ("dossier.resolved", 1, "NgayKetThucXuLy"),
        ("dossier.returned", 1, "NgayTra"),
    ]
    assert result.origins[2].field("data.applicant.name") == "ChuHoSo"
    steps = progress(
        step("20260318140000", 2, dossier="D-1"), step("20260318140000", 6), step("20260319140000", 4)
    )
    result = translate(steps, CATALOGUE, SOURCE)
    assert [(e["type"], o.index, o.field("occurred_at")) for e, o in zip(result.events, result.origins)] == [
        ("dossier.paused", 1, "ThoiDiemXuLy"),
        ("dossier.resumed", 2, "ThoiDiemXuLy"),
    ]


def test_progress_dossiers_reads_mahoso_as_the_translation_does():
    body = progress(
        step("20260318140000", 6, dossier=123), step("20260318140000", 6), step(None, 4, dossier=" 123 ")
    )
    assert progress_dossiers(body) == ["123", "000.00.12.H10-260302-0001"]
    assert set(translate(body | {"data": body["data"][:2]}, CATALOGUE, SOURCE).new_steps) == {
        "123",
        "000.00.12.H10-260302-0001",
    }
    assert progress_dossiers(snapshot(hoso())) == [] and progress_dossiers([]) == []


def test_progress_items_need_their_fields():
    assert errors_of(
        progress(step(None, 6), step("20260318140000", None), step("20260318140000", 6, dossier=""))
    ) == [(0, "ThoiDiemXuLy"), (1, "TrangThai"), (2, "MaHoSo")]


# -- ids: re-sends and growing snapshots ------------------------------------------------------------------
def test_a_resent_snapshot_gives_the_same_ids_and_a_later_one_only_adds():
    received = snapshot(hoso(NgayHenTra="20260316090000"))
    supplement = snapshot(hoso(TrangThaiHoSo=5, DanhSachHoSoBoSung=[{"NgayBoSung": "20260304100000"}]))
    done = snapshot(
        hoso(
            TrangThaiHoSo=10,
            NgayKetThucXuLy="2026-03-13T15:00:00",
            NgayTra="20260316090000",
            DanhSachHoSoBoSung=[
                {"NgayBoSung": "2026-03-04T10:00:00+07:00", "NgayTiepNhanBoSung": "20260309140000"}
            ],
        )
    )
    first = [e["event_id"] for e in events_of(received)]
    assert [e["event_id"] for e in events_of(received)] == first  # sent again: duplicates only
    second = [e["event_id"] for e in events_of(supplement)]
    third = [e["event_id"] for e in events_of(done)]
    assert second[: len(first)] == first and len(second) == 2
    assert third[: len(second)] == second and len(third) == 5
    # The id is UUIDv5 of source/MaHoSo/type/n/instant, whatever form the instant was sent in.
    assert first[0] == str(
        uuid.uuid5(
            uuid.UUID("0b6f3a2e-5d1c-4c8e-9a7f-3e2d1c0b9a88"),
            f"{SOURCE}/000.00.12.H10-260302-0001/dossier.received/0/20260302090000",
        )
    )


def test_a_later_snapshot_that_misses_a_fact_retracts_nothing_and_ids_depend_on_the_source():
    full = events_of(snapshot(hoso(TrangThaiHoSo=9, NgayKetThucXuLy="20260313150000")))
    assert events_of(snapshot(hoso(TrangThaiHoSo=4)))[0]["event_id"] == full[0]["event_id"]
    other = translate(snapshot(hoso()), CATALOGUE, "motcua-khac").events
    assert other[0]["event_id"] != full[0]["event_id"]


# -- the step pairing -------------------------------------------------------------------------------------
def test_6_then_4_pauses_and_resumes():
    result = translate(
        progress(step("20260318140000", 6), step("2026-03-23T10:00:00", "4")), CATALOGUE, SOURCE
    )
    assert [(e["type"], e["occurred_at"], e["data"]) for e in result.events] == [
        ("dossier.paused", "2026-03-18T14:00:00+07:00", {"reason": "financial_obligation"}),
        ("dossier.resumed", "2026-03-23T10:00:00+07:00", {}),
    ]
    assert [(s.at.isoformat(), s.status) for s in result.new_steps["000.00.12.H10-260302-0001"]] == [
        ("2026-03-18T14:00:00+07:00", 6),
        ("2026-03-23T10:00:00+07:00", 4),
    ]


def test_6_then_6_is_one_pause():
    assert kinds(progress(step("20260318140000", 6), step("20260319090000", 6))) == [
        ("dossier.paused", "2026-03-18T14:00:00+07:00")
    ]


@pytest.mark.parametrize("after, resumes", [(2, True), (4, True), (5, True), (3, False), (9, False)])
def test_which_steps_after_6_resume(after, resumes):
    evs = kinds(progress(step("20260318140000", 6), step("20260320090000", after)))
    assert (("dossier.resumed", "2026-03-20T09:00:00+07:00") in evs) == resumes


def test_steps_pair_by_time_across_requests_whatever_order_they_arrive_in():
    # The resume's step arrives first: nothing yet. Then the fee step, earlier in time, in a later request.
    first = translate(progress(step("20260323100000", 4)), CATALOGUE, SOURCE)
    assert first.events == []
    kept = first.new_steps
    second = translate(progress(step("20260318140000", 6)), CATALOGUE, SOURCE, kept)
    assert [e["type"] for e in second.events] == ["dossier.paused", "dossier.resumed"]
    kept = {
        "000.00.12.H10-260302-0001": kept["000.00.12.H10-260302-0001"]
        + second.new_steps["000.00.12.H10-260302-0001"]
    }
    # A step sent again is not kept twice, and gives the same events (duplicates for intake).
    again = translate(progress(step("20260318140000", 6)), CATALOGUE, SOURCE, kept)
    assert again.new_steps == {} and [e["event_id"] for e in again.events] == [
        e["event_id"] for e in second.events
    ]


def test_a_step_survives_its_stored_form():
    s = ProgressStep.from_json(
        translate(progress(step("20260318140000", 6, NguoiXuLy="Lê Văn Bình")), CATALOGUE, SOURCE)
        .new_steps["000.00.12.H10-260302-0001"][0]
        .to_json()
    )
    assert (s.at.isoformat(), s.status, dict(s.details)) == (
        "2026-03-18T14:00:00+07:00",
        6,
        {"NguoiXuLy": "Lê Văn Bình"},
    )


# -- the catalogue --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, line, words",
    [
        ("", None, "empty"),
        ("agencies: {}\n", 1, "needs a procedures mapping"),
        ("procedures:\n  P: {duration: {value: 0, unit: working_days}}\n", 2, "must be > 0"),
        ("procedures:\n  P: {duration: {value: 5, unit: weeks}}\n", 2, "duration.unit must be one of"),
        ('procedures:\n  P:\n    duration: {value: "5", unit: working_days}\n', 3, "must be a number"),
        ("procedures:\n  P: {duration: {value: 121, unit: months}}\n", 2, "at most 120 months"),
        ("procedures:\n  P: {duration: {value: 5}}\n", 2, "needs both value and unit"),
        ("procedures:\n  P: {supplement_mode: pause}\n", 2, "needs a duration"),
        (
            "procedures:\n  P:\n    duration: {value: 5, unit: working_days}\n    supplement_mode: later\n",
            4,
            "restart or pause",
        ),
        (
            "procedures:\n  P: {duration: {value: 5, unit: working_days}, online: full}\n",
            2,
            "unknown key 'online'",
        ),
        ('procedures: {}\nagencies:\n  A: ""\n', 3, "needs a name"),
        ("procedures: {}\nagencies: [A]\n", 2, "must be a mapping"),
        ("procedure: {}\n", 1, "unknown key 'procedure'"),
        ("procedures: {P: [\n", None, "not valid YAML"),
    ],
)
def test_an_invalid_catalogue_is_refused_with_line_and_reason(text, line, words):
    with pytest.raises(CatalogueError) as exc:
        parse_catalogue(text, "catalogue.yaml")
    if line is not None:
        assert exc.value.line == line
    assert words in exc.value.reason and "catalogue.yaml" in str(exc.value)


def test_the_catalogue_file_is_read_and_a_missing_one_refused(tmp_path):
    path = tmp_path / "catalogue.yaml"
    path.write_text(CATALOGUE_TEXT, encoding="utf-8")
    assert load_catalogue(path) == CATALOGUE
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "nope.yaml")


# -- tthc dvcqg -------------------------------------------------------------------------------------------
def run_cli(tmp_path, lines, catalogue=CATALOGUE_TEXT):
    (tmp_path / "in.jsonl").write_text(
        "".join(
            (line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n" for line in lines
        ),
        encoding="utf-8",
    )
    (tmp_path / "catalogue.yaml").write_text(catalogue, encoding="utf-8")
    return main(
        [
            "dvcqg",
            "--in",
            str(tmp_path / "in.jsonl"),
            "--catalogue",
            str(tmp_path / "catalogue.yaml"),
            "--source",
            SOURCE,
            "--out",
            str(tmp_path / "out.jsonl"),
        ]
    )


def read_out(tmp_path):
    return [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]


def test_the_command_accumulates_steps_across_lines_and_writes_each_event_once(tmp_path, capsys):
    code = run_cli(
        tmp_path,
        [
            snapshot(hoso()),
            progress(step("20260318140000", 6)),
            "",
            snapshot(hoso()),  # sent again
            progress(step("20260319090000", 6)),
            progress(step("20260323100000", 4)),
        ],
    )
    assert code == 0 and capsys.readouterr().err == ""
    assert [e["type"] for e in read_out(tmp_path)] == [
        "dossier.received",
        "dossier.paused",
        "dossier.resumed",
    ]


def test_refused_items_are_reported_with_line_item_and_field_and_the_exit_code_is_2(tmp_path, capsys):
    code = run_cli(
        tmp_path,
        [
            snapshot(hoso()),
            snapshot(hoso(MaHoSo="D-2"), hoso(MaHoSo="D-3", ChuHoSo="")),
            "not json",
            {"service": "x", "data": [hoso()]},
        ],
    )
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err == [
        "line 2: item 1: ChuHoSo: required",
        "line 3: not valid JSON (Expecting value)",
        "line 4: service: must be DongBoHoSoMC or CapNhatTienDoHoSoMC",
    ]
    assert [e["dossier_id"] for e in read_out(tmp_path)] == ["000.00.12.H10-260302-0001"]  # D-2 not half-kept


@pytest.mark.parametrize("problem", ["missing input", "bad catalogue", "bad source"])
def test_user_mistakes_are_one_line_and_exit_2(tmp_path, capsys, problem):
    (tmp_path / "in.jsonl").write_text(json.dumps(snapshot(hoso())) + "\n", encoding="utf-8")
    (tmp_path / "catalogue.yaml").write_text(
        "procedures:\n  P: {duration: {value: -1, unit: working_days}}\n"
        if problem == "bad catalogue"
        else CATALOGUE_TEXT,
        encoding="utf-8",
    )
    code = main(
        [
            "dvcqg",
            "--in",
            str(tmp_path / ("nope.jsonl" if problem == "missing input" else "in.jsonl")),
            "--catalogue",
            str(tmp_path / "catalogue.yaml"),
            "--source",
            "x" * 65 if problem == "bad source" else SOURCE,
            "--out",
            str(tmp_path / "out.jsonl"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    if problem == "bad catalogue":
        assert "line 2" in err and "must be > 0" in err
