"""Apology letter (Mẫu 04): rendering, layout per Nghị định 30/2020, template lint, PDF preview."""

from __future__ import annotations

import importlib.util
import io
import shutil
import subprocess
import unicodedata
import zipfile
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import docx
import pytest
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Cm, Mm, Pt

from tthc_core.letter import (
    DRAFT_NUMBER,
    PLACEHOLDERS,
    LetterDefaults,
    LetterFields,
    LetterHeader,
    check_template,
    derive_header,
    letter_context,
    letter_for_draft,
    render_letter,
)
from tthc_adapters.pdf import docx_to_pdf
from tthc_core.letter.vn_format import nd30_date_parts

VN = timezone(timedelta(hours=7))
ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "packages/tthc_core/src/tthc_core/letter/templates/mau04.docx"
GENERATOR = ROOT / "packages/tthc_core/scripts/make_letter_template.py"
TRICKY_NAME = 'Công ty TNHH Hoa & Lá <Việt> "Số 1"'
FONT = "Times New Roman"


@pytest.fixture
def fields() -> LetterFields:
    return LetterFields(
        parent_agency="UBND tỉnh Hòa Bình",
        issuing_agency="Sở Tài nguyên và Môi trường",
        agency_name="Sở Tài nguyên và Môi trường tỉnh Hòa Bình",
        agency_code="000.00.12.H10",
        place="Hòa Bình",
        number="15/PXL",
        issued_on=date(2026, 2, 5),
        applicant_kind="organization",
        applicant_name=TRICKY_NAME,
        dossier_id="000.00.12.H10-260113-0001",
        procedure_name="Cấp giấy chứng nhận quyền sử dụng đất lần đầu",
        # 17:30 UTC is already the next day in Vietnam: the letter must say 14/01/2026.
        received_at=datetime(2026, 1, 13, 17, 30, tzinfo=timezone.utc),
        due_at=datetime(2026, 2, 3, 16, 0, tzinfo=VN),
        reason="Hồ sơ cần xác minh thêm nguồn gốc sử dụng đất tại địa phương.",
        new_due_at=datetime(2026, 2, 10, 8, 5, tzinfo=VN),
        one_stop_unit_name="Trung tâm Phục vụ hành chính công tỉnh Hòa Bình",
        signer_position="Giám đốc",
    )


def open_docx(data: bytes) -> docx.document.Document:
    return docx.Document(io.BytesIO(data))


def all_paragraphs(document):
    yield from document.paragraphs
    for table in document.tables:
        for row in table.rows:
            for cell in row.cells:
                yield from cell.paragraphs


def full_text(document) -> str:
    return "\n".join(p.text for p in all_paragraphs(document))


def paragraph(document, startswith: str):
    found = [p for p in all_paragraphs(document) if p.text.startswith(startswith)]
    assert len(found) == 1, f"expected one paragraph starting {startswith!r}, got {[p.text for p in found]}"
    return found[0]


def sole_run(para):
    runs = [r for r in para.runs if r.text]
    assert len(runs) == 1, [r.text for r in runs]
    return runs[0]


@pytest.fixture
def letter(fields):
    return open_docx(render_letter(fields))


# --- page and fonts ---------------------------------------------------------------------------------


def test_page_is_a4_portrait_with_nd30_margins(letter):
    section = letter.sections[0]
    assert abs(section.page_width - Mm(210)) < Mm(0.5)
    assert abs(section.page_height - Mm(297)) < Mm(0.5)
    assert Mm(20) <= section.top_margin <= Mm(25)
    assert Mm(20) <= section.bottom_margin <= Mm(25)
    assert Mm(30) <= section.left_margin <= Mm(35)
    assert Mm(15) <= section.right_margin <= Mm(20)


def test_every_run_is_black_times_new_roman_in_all_script_slots(letter):
    runs = [r for p in all_paragraphs(letter) for r in p.runs if r.text]
    assert runs
    for run in runs:
        rfonts = run._element.rPr.rFonts
        for slot in ("ascii", "hAnsi", "eastAsia", "cs"):
            assert rfonts.get(qn(f"w:{slot}")) == FONT, (run.text, slot)
        assert str(run.font.color.rgb) == "000000", run.text


def test_body_is_13_14pt_justified_with_first_line_indent(letter):
    body = [p for p in letter.paragraphs if p.text and p.paragraph_format.first_line_indent]
    assert len(body) == 5  # the five sentences of the form
    for para in body:
        assert para.paragraph_format.alignment == WD_ALIGN_PARAGRAPH.JUSTIFY
        assert Cm(1) <= para.paragraph_format.first_line_indent <= Cm(1.27)
        for run in para.runs:
            assert Pt(13) <= run.font.size <= Pt(14), run.text


def test_header_texts_and_styles(letter):
    national = sole_run(paragraph(letter, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"))
    assert national.bold and Pt(12) <= national.font.size <= Pt(13)
    motto = sole_run(paragraph(letter, "Độc lập - Tự do - Hạnh phúc"))
    assert motto.bold and Pt(13) <= motto.font.size <= Pt(14)
    parent = sole_run(paragraph(letter, "UBND TỈNH HÒA BÌNH"))
    assert not parent.bold and parent.font.size == Pt(13)
    agency = sole_run(paragraph(letter, "SỞ TÀI NGUYÊN VÀ MÔI TRƯỜNG"))
    assert agency.bold and agency.text == "SỞ TÀI NGUYÊN VÀ MÔI TRƯỜNG"  # the province is on the line above
    title = paragraph(letter, "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ")
    assert sole_run(title).bold and title.alignment == WD_ALIGN_PARAGRAPH.CENTER
    # ND 30 rules under the agency name and under the motto: bordered empty paragraphs
    rules = letter.element.body.findall(".//" + qn("w:pBdr"))
    assert len(rules) == 2


def test_number_and_dated_line(letter):
    assert paragraph(letter, "Số:").text == "Số: 15/PXL"
    dated = paragraph(letter, "Hòa Bình, ngày")
    assert dated.text == "Hòa Bình, ngày 05 tháng 02 năm 2026"
    assert sole_run(dated).italic


def test_recipients_and_signature_block(letter):
    heading = sole_run(paragraph(letter, "Nơi nhận:"))
    assert heading.bold and heading.italic and heading.font.size == Pt(12)
    for line in ("- Như trên;", "- Trung tâm Phục vụ hành chính công tỉnh Hòa Bình;", "- Lưu: VT."):
        assert paragraph(letter, line).text == line
        assert sole_run(paragraph(letter, line)).font.size == Pt(11)
    signer = sole_run(paragraph(letter, "GIÁM ĐỐC"))
    assert signer.bold
    assert sole_run(paragraph(letter, "(Ký, ghi rõ họ tên và đóng dấu)")).italic


# --- content ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issued_on", "expected"),
    [
        (date(2026, 2, 5), ("05", "02", "2026")),
        (date(2026, 11, 15), ("15", "11", "2026")),
        (date(2026, 3, 7), ("07", "3", "2026")),  # ND 30: only months 1 and 2 get the zero
        (date(2026, 1, 31), ("31", "01", "2026")),
    ],
)
def test_nd30_date_parts(issued_on, expected):
    assert nd30_date_parts(issued_on) == expected


def test_dated_line_without_leading_zero_for_november(fields):
    letter = open_docx(render_letter(replace(fields, issued_on=date(2026, 11, 15))))
    assert paragraph(letter, "Hòa Bình, ngày").text == "Hòa Bình, ngày 15 tháng 11 năm 2026"


def test_every_field_value_is_printed(fields, letter):
    text = full_text(letter)
    context = letter_context(fields).as_dict()
    # agency_code selects the deployment's template; the printed form has no slot for it.
    for key, value in context.items():
        if key in {"agency_code", "parent_agency", "issuing_agency", "signer_position"}:
            continue
        assert value in text, key
    for upper_case in ("parent_agency", "issuing_agency", "signer_position"):
        assert context[upper_case].upper() in text  # the header and signature print them upper case
    assert "Ngày 14/01/2026, Sở Tài nguyên và Môi trường tỉnh Hòa Bình tiếp nhận hồ sơ" in text  # full name
    assert "Thời gian hẹn trả kết quả: 16 giờ 00 phút, ngày 03/02/2026." in text
    assert "hẹn lại thời gian trả kết quả: 08 giờ 05 phút, ngày 10/02/2026." in text
    assert "Mã hồ sơ: 000.00.12.H10-260113-0001." in text
    assert "Lý do: Hồ sơ cần xác minh thêm nguồn gốc sử dụng đất tại địa phương." in text  # one full stop
    assert "xin lỗi Tổ chức vì sự chậm trễ này" in text


def test_tricky_name_renders_exactly(letter):
    assert paragraph(letter, "Kính gửi:").text == f"Kính gửi: Tổ chức {TRICKY_NAME}."
    assert f"của Tổ chức {TRICKY_NAME}." in full_text(letter)


def test_no_template_tags_are_left_anywhere(fields):
    with zipfile.ZipFile(io.BytesIO(render_letter(fields))) as package:
        for name in package.namelist():
            if name.endswith(".xml"):
                xml = package.read(name).decode("utf-8")
                assert "{{" not in xml and "{%" not in xml and "{#" not in xml, name


def test_text_is_nfc_even_from_decomposed_input(fields):
    decomposed = unicodedata.normalize("NFD", "Nguyễn Thị Ánh Tuyết")
    letter = open_docx(render_letter(replace(fields, applicant_kind="citizen", applicant_name=decomposed)))
    kinh_gui = paragraph(letter, "Kính gửi:").text
    assert kinh_gui == "Kính gửi: Ông/Bà Nguyễn Thị Ánh Tuyết."
    assert unicodedata.is_normalized("NFC", full_text(letter))


def test_draft_has_dotted_blanks(fields):
    letter = open_docx(render_letter(replace(fields, number=DRAFT_NUMBER, issued_on=None)))
    assert paragraph(letter, "Số:").text == "Số: …/PXL"
    assert paragraph(letter, "Hòa Bình, ngày").text == "Hòa Bình, ngày …… tháng …… năm ……"


@pytest.mark.parametrize("bad", [{"applicant_kind": "company"}, {"due_at": datetime(2026, 2, 3, 16, 0)}])
def test_fields_are_validated(fields, bad):
    (field,) = bad
    with pytest.raises(ValueError, match=f"^{field} "):  # the error names the field
        replace(fields, **bad)


# --- templates --------------------------------------------------------------------------------------


def test_bundled_template_passes_its_own_check():
    assert check_template(BUNDLED) == []


def test_bundled_template_keeps_each_tag_inside_one_run():
    template = docx.Document(BUNDLED)
    runs = [r.text for p in all_paragraphs(template) for r in p.runs]
    tagged = [t for t in runs if "{" in t or "}" in t]
    assert len(tagged) >= 10
    for text in tagged:
        assert text.count("{{") == text.count("}}") and text.count("{%") == text.count("%}"), text


def test_bundled_template_is_what_the_generator_builds():
    spec = importlib.util.spec_from_file_location("make_letter_template", GENERATOR)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert generator.build() == generator.build(), "the generator must be reproducible"
    assert generator.build() == BUNDLED.read_bytes(), "run packages/tthc_core/scripts/make_letter_template.py"


def make_template(path: Path, *lines: str) -> Path:
    document = docx.Document()
    for line in lines:
        document.add_paragraph(line)  # one run per paragraph
    document.save(path)
    return path


def test_check_reports_unknown_and_missing_placeholders(tmp_path):
    bad = make_template(
        tmp_path / "bad.docx",
        "Số: {{ number }}/PXL",
        "Kính gửi: {{ applicant_nam }}",  # misspelt
        "Mã hồ sơ: {{ dossier_id }}, hẹn {{ due_at }}, hẹn lại {{ new_due_at }}",  # no {{ reason }}
    )
    problems = check_template(bad)
    assert any("unknown placeholder" in p and "applicant_nam " in p for p in problems), problems
    assert any("missing required placeholder" in p and "applicant_name" in p for p in problems), problems
    assert any("missing required placeholder" in p and "reason" in p for p in problems), problems
    assert len(problems) == 3


def test_check_accepts_a_minimal_complete_template(tmp_path):
    good = make_template(
        tmp_path / "good.docx",
        "Số: {{ number }} — {{ applicant_title }} {{ applicant_name|upper }}",
        "{{ dossier_id }} {{ due_at }} {{ reason }} {{ new_due_at }}",
    )
    assert check_template(good) == []
    assert {"number", "applicant_name"} <= PLACEHOLDERS


def test_check_reports_unreadable_and_broken_templates(tmp_path):
    not_docx = tmp_path / "not.docx"
    not_docx.write_bytes(b"plain text, not a Word file")
    [problem] = check_template(not_docx)
    assert "unreadable" in problem
    [problem] = check_template(tmp_path / "absent.docx")
    assert "unreadable" in problem
    broken = make_template(tmp_path / "broken.docx", "{{ number }} {{ applicant_name }} {% if reason %}")
    [problem] = check_template(broken)
    assert "syntax error" in problem


# --- PDF preview (OPTIONAL: skipped where LibreOffice is not installed) ------------------------------


@pytest.mark.skipif(shutil.which("soffice") is None and shutil.which("libreoffice") is None,
                    reason="optional: LibreOffice (soffice) is not installed, no PDF preview")
def test_pdf_preview_with_libreoffice(fields, tmp_path):
    source = tmp_path / "letter.docx"
    source.write_bytes(render_letter(fields))
    pdf = docx_to_pdf(source, tmp_path / "pdf")
    assert pdf is not None and pdf.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                              check=True).stdout
        text = unicodedata.normalize("NFC", text)
        assert "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ" in text
        assert TRICKY_NAME in " ".join(text.split())
        assert "Số: 15/PXL" in text and "15/PXL/PXL" not in text


def test_pdf_preview_is_none_without_libreoffice(fields, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    source = tmp_path / "letter.docx"
    source.write_bytes(render_letter(fields))
    assert docx_to_pdf(source, tmp_path) is None


# --- the number (issue 14.1) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    ["01/PXL", "15/PXL", "123/TB-STP"],  # generated, typed digits (normalised by the service), free-form
)
def test_the_number_is_printed_exactly_as_issued(fields, number):
    letter = open_docx(render_letter(replace(fields, number=number)))
    assert paragraph(letter, "Số:").text == f"Số: {number}"


def test_check_refuses_a_template_that_adds_the_symbol_again(tmp_path):
    old_style = make_template(
        tmp_path / "old.docx",
        "Số: {{ number }}/PXL — {{ applicant_name }}",
        "{{ dossier_id }} {{ due_at }} {{ reason }} {{ new_due_at }}",
    )
    [problem] = check_template(old_style)
    assert "prints the number twice" in problem and "01/PXL/PXL" in problem


# --- the letter head, per agency (issue 14.4) -------------------------------------------------------


@pytest.mark.parametrize(
    ("agency_name", "parent", "issuing", "place", "signer"),
    [
        ("Sở Tư pháp tỉnh Lạng Sơn", "UBND TỈNH LẠNG SƠN", "Sở Tư pháp", "Lạng Sơn", "GIÁM ĐỐC"),
        ("Sở Tài chính thành phố Hà Nội", "UBND THÀNH PHỐ HÀ NỘI", "Sở Tài chính", "Hà Nội", "GIÁM ĐỐC"),
        ("Trung tâm Phục vụ hành chính công tỉnh Lạng Sơn", "UBND TỈNH LẠNG SƠN",
         "Trung tâm Phục vụ hành chính công", "Lạng Sơn", "GIÁM ĐỐC"),
        ("Sở Nội vụ thành phố Hồ Chí Minh", "UBND THÀNH PHỐ HỒ CHÍ MINH", "Sở Nội vụ",
         "Thành phố Hồ Chí Minh", "GIÁM ĐỐC"),
        ("UBND xã Hữu Lũng", "", "Ủy ban nhân dân\nxã Hữu Lũng", "Hữu Lũng", "TM. ỦY BAN NHÂN DÂN\nCHỦ TỊCH"),
        # not an agency of the province: no parent is guessed, the name stays whole
        ("Thuế tỉnh Lạng Sơn", "", "Thuế tỉnh Lạng Sơn", "Lạng Sơn", "THỦ TRƯỞNG CƠ QUAN"),
        ("Bộ phận tiếp nhận", "", "Bộ phận tiếp nhận", "…………", "THỦ TRƯỞNG CƠ QUAN"),
    ],
)
def test_the_letter_head_read_off_the_agency_name(agency_name, parent, issuing, place, signer):
    header = derive_header(agency_name)
    assert (header.parent_agency, header.issuing_agency, header.place, header.signer_position) == (
        parent, issuing, place, signer)


def test_configured_lines_win_per_agency_then_for_the_deployment():
    defaults = LetterDefaults(
        signer_position="KT. GIÁM ĐỐC\nPHÓ GIÁM ĐỐC",
        agencies={"000.01.20.H10": LetterHeader(parent_agency="SỞ NÔNG NGHIỆP VÀ MÔI TRƯỜNG",
                                                issuing_agency="VĂN PHÒNG ĐĂNG KÝ ĐẤT ĐAI",
                                                signer_position="GIÁM ĐỐC")},
    )
    land = defaults.header_for("000.01.20.H10", "Văn phòng Đăng ký đất đai tỉnh Lạng Sơn")
    assert (land.parent_agency, land.issuing_agency, land.place, land.signer_position) == (
        "SỞ NÔNG NGHIỆP VÀ MÔI TRƯỜNG", "VĂN PHÒNG ĐĂNG KÝ ĐẤT ĐAI", "Lạng Sơn", "GIÁM ĐỐC")
    justice = defaults.header_for("000.00.12.H10", "Sở Tư pháp tỉnh Lạng Sơn")
    assert (justice.parent_agency, justice.issuing_agency, justice.signer_position) == (
        "UBND TỈNH LẠNG SƠN", "Sở Tư pháp", "KT. GIÁM ĐỐC\nPHÓ GIÁM ĐỐC")
    # A parent line switched off: the issuing line names the province itself.
    no_parent = LetterDefaults(agencies={"000.00.12.H10": LetterHeader(parent_agency="")})
    alone = no_parent.header_for("000.00.12.H10", "Sở Tư pháp tỉnh Lạng Sơn")
    assert (alone.parent_agency, alone.issuing_agency) == ("", "Sở Tư pháp tỉnh Lạng Sơn")


def _draft_of_example_01(agency_name: str = "Sở Tư pháp tỉnh Lạng Sơn"):
    from tthc_contracts import parse_dossier_event
    from tthc_contracts.events import Agency
    from tthc_core.apology import Draft
    from tthc_core.calendar import CalendarBook
    from tthc_core.deadlines import fold

    from tests.support.examples import examples

    received = parse_dossier_event(examples()[0].events()[0])
    dossier, _ = fold([received], CalendarBook())
    draft = Draft("a-1", dossier.dossier_id, "at_risk", dossier.due_at, Agency(code="000.00.12.H10",
                  name=agency_name), dossier.due_at + timedelta(days=3))
    return draft, dossier, received


def header_lines(letter) -> list[str]:
    """The texts of the left header cell, in order."""
    return [p.text for p in letter.tables[0].rows[0].cells[0].paragraphs if p.text]


def test_a_provincial_department_heads_its_letter_without_repeating_the_province():
    draft, dossier, received = _draft_of_example_01()
    letter = open_docx(render_letter(letter_for_draft(draft, dossier, received)))
    assert header_lines(letter) == ["UBND TỈNH LẠNG SƠN", "SỞ TƯ PHÁP"]
    assert "Ngày 13/02/2026, Sở Tư pháp tỉnh Lạng Sơn tiếp nhận hồ sơ" in full_text(letter)
    assert paragraph(letter, "Số:").text == "Số: …/PXL"  # a draft: the blank of the form
    assert paragraph(letter, "Lạng Sơn, ngày").text == "Lạng Sơn, ngày …… tháng …… năm ……"
    assert sole_run(paragraph(letter, "GIÁM ĐỐC")).bold
    issued = open_docx(render_letter(letter_for_draft(draft, dossier, received, number="01/PXL",
                                                      issued_on=date(2026, 2, 26), reason="Cần xác minh")))
    assert paragraph(issued, "Số:").text == "Số: 01/PXL"
    assert paragraph(issued, "Lạng Sơn, ngày").text == "Lạng Sơn, ngày 26 tháng 02 năm 2026"


def test_a_peoples_committee_has_no_parent_line_and_signs_on_behalf_of_its_members():
    draft, dossier, received = _draft_of_example_01("UBND xã Hữu Lũng")
    letter = open_docx(render_letter(letter_for_draft(draft, dossier, received)))
    cell = letter.tables[0].rows[0].cells[0]
    assert cell.paragraphs[0].text == "ỦY BAN NHÂN DÂN\nXÃ HỮU LŨNG"  # no empty line above it
    assert sole_run(cell.paragraphs[0]).bold
    # two lines of one bold run, as ND 30 writes "TM." over the position
    signer = paragraph(letter, "TM. ỦY BAN NHÂN DÂN")
    assert signer.text == "TM. ỦY BAN NHÂN DÂN\nCHỦ TỊCH"
    assert len(signer._element.findall(".//" + qn("w:br"))) == 1
