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
    PLACEHOLDERS,
    LetterFields,
    check_template,
    letter_context,
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
        parent_agency="Ủy ban nhân dân tỉnh Hòa Bình",
        agency_name="Sở Tài nguyên và Môi trường",
        agency_code="000.00.12.H10",
        place="Hòa Bình",
        number="15",
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
    parent = sole_run(paragraph(letter, "ỦY BAN NHÂN DÂN TỈNH HÒA BÌNH"))
    assert not parent.bold and parent.font.size == Pt(13)
    agency = sole_run(paragraph(letter, "SỞ TÀI NGUYÊN VÀ MÔI TRƯỜNG"))
    assert agency.bold
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
        if key in {"agency_code", "parent_agency", "agency_name", "signer_position"}:
            continue
        assert value in text, key
    for upper_case in ("parent_agency", "agency_name", "signer_position"):
        assert context[upper_case].upper() in text  # the header and signature print them upper case
    assert context["agency_name"] in text  # and the body as written
    assert "Ngày 14/01/2026, Sở Tài nguyên và Môi trường tiếp nhận hồ sơ" in text
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
    letter = open_docx(render_letter(replace(fields, number="…", issued_on=None)))
    assert paragraph(letter, "Số:").text == "Số: …/PXL"
    assert paragraph(letter, "Hòa Bình, ngày").text == "Hòa Bình, ngày …… tháng …… năm ……"


@pytest.mark.parametrize("bad", [{"applicant_kind": "company"}, {"due_at": datetime(2026, 2, 3, 16, 0)}])
def test_fields_are_validated(fields, bad):
    with pytest.raises(ValueError):
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
        "Số: {{ number }}/PXL — {{ applicant_title }} {{ applicant_name|upper }}",
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


def test_pdf_preview_is_none_without_libreoffice(fields, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    source = tmp_path / "letter.docx"
    source.write_bytes(render_letter(fields))
    assert docx_to_pdf(source, tmp_path) is None
