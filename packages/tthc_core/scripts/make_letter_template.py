"""Rebuild the bundled apology-letter template `tthc_core/letter/templates/mau04.docx` (form Mẫu 04).

Run from the repository root:  .venv/bin/python packages/tthc_core/scripts/make_letter_template.py [OUT]

Layout per Nghị định 30/2020/NĐ-CP Phụ lục I (see spec/apology.md). Every Jinja tag is written inside a
single run, because docxtpl cannot render a tag that Word has split across runs. The output is
byte-for-byte reproducible (fixed document properties; the zip written by the letters' own `stable_docx`),
so a rebuild only shows up in a diff when the layout really changed.
"""

from __future__ import annotations

import io
import math
import sys
import unicodedata
from datetime import datetime, timezone
from pathlib import Path

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Mm, Pt, RGBColor, Twips
from tthc_core.letter.docx_package import stable_docx

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/tthc_core/letter/templates/mau04.docx"

FONT = "Times New Roman"
BODY_PT = 14
FIXED_TIME = datetime(2026, 1, 1, tzinfo=timezone.utc)

# Usable width: A4 210 mm - 30 mm left - 15 mm right = 165 mm, split between the two header columns.
HEADER_LEFT, HEADER_RIGHT = Cm(7.0), Cm(9.5)
SIGN_LEFT, SIGN_RIGHT = Cm(7.5), Cm(9.0)


def set_rfonts(rpr) -> None:
    """Name the font for every script slot: Word picks eastAsia/cs for some characters, and theme
    attributes (asciiTheme...) would override the explicit names, so they are dropped."""
    rfonts = rpr.find(qn("w:rFonts"))
    if rfonts is None:
        rfonts = OxmlElement("w:rFonts")
        rpr.insert(0, rfonts)
    for attr in list(rfonts.attrib):
        if attr.endswith("Theme") or attr.endswith("theme"):
            del rfonts.attrib[attr]
    for slot in ("ascii", "hAnsi", "eastAsia", "cs"):
        rfonts.set(qn(f"w:{slot}"), FONT)


def set_child_val(rpr, tag: str, val: str) -> None:
    el = rpr.find(qn(tag))
    if el is None:
        el = OxmlElement(tag)
        rpr.append(el)
    el.set(qn("w:val"), val)


def style_run(run, size_pt: float, bold: bool = False, italic: bool = False) -> None:
    run.font.name = FONT
    run.font.size = Pt(size_pt)
    run.font.bold = bold
    run.font.italic = italic
    run.font.color.rgb = RGBColor(0, 0, 0)
    rpr = run._element.get_or_add_rPr()
    set_rfonts(rpr)
    set_child_val(rpr, "w:szCs", str(int(size_pt * 2)))


def add_text(container, text: str, size_pt: float, *, bold=False, italic=False,
             align=WD_ALIGN_PARAGRAPH.CENTER, first_line=None, before=0, after=0, first=False):
    """One paragraph holding ONE run with the whole text (tags included)."""
    para = container.paragraphs[0] if first else container.add_paragraph()
    fmt = para.paragraph_format
    fmt.alignment = align
    fmt.space_before = Pt(before)
    fmt.space_after = Pt(after)
    fmt.line_spacing_rule = WD_LINE_SPACING.SINGLE
    if first_line is not None:
        fmt.first_line_indent = first_line
    style_run(para.add_run(unicodedata.normalize("NFC", text)), size_pt, bold, italic)
    return para


def add_rule(cell, column_width, rule_width) -> None:
    """A short centred horizontal line (ND 30 puts one under the agency name and the motto): an empty
    paragraph 2 pt high whose bottom border spans `rule_width`, centred by equal indents."""
    para = cell.add_paragraph()
    fmt = para.paragraph_format
    side = int((column_width - rule_width) / 2)
    fmt.left_indent = side
    fmt.right_indent = side
    fmt.space_before = Pt(0)
    fmt.space_after = Pt(0)
    fmt.line_spacing_rule = WD_LINE_SPACING.EXACTLY
    fmt.line_spacing = Pt(2)
    ppr = para._element.get_or_add_pPr()
    borders = OxmlElement("w:pBdr")
    bottom = OxmlElement("w:bottom")
    for key, val in (("val", "single"), ("sz", "6"), ("space", "1"), ("color", "000000")):
        bottom.set(qn(f"w:{key}"), val)
    borders.append(bottom)
    # pBdr must come before spacing/ind/jc in CT_PPr's sequence, right after pStyle/keepNext...
    anchor = ppr.find(qn("w:spacing"))
    if anchor is None:
        ppr.append(borders)
    else:
        anchor.addprevious(borders)


def borderless_table(doc, rows: int, widths):
    table = doc.add_table(rows=rows, cols=len(widths))
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    table.autofit = False  # writes <w:tblLayout w:type="fixed"/>
    tbl_pr = table._tbl.tblPr
    tbl_w = tbl_pr.find(qn("w:tblW"))
    tbl_w.set(qn("w:type"), "dxa")
    tbl_w.set(qn("w:w"), str(sum(int(w.twips) for w in widths)))
    borders = OxmlElement("w:tblBorders")
    for edge in ("top", "left", "bottom", "right", "insideH", "insideV"):
        el = OxmlElement(f"w:{edge}")
        el.set(qn("w:val"), "nil")
        borders.append(el)
    # CT_TblPr is a sequence and Word rejects misordered children: tblBorders goes before tblLayout.
    tbl_pr.find(qn("w:tblLayout")).addprevious(borders)
    # Word reads cell widths, LibreOffice reads the grid: set both.
    for col, width in zip(table.columns, widths):
        col.width = width
    for row in table.rows:
        for cell, width in zip(row.cells, widths):
            cell.width = width
    return table


def set_defaults(doc) -> None:
    """Normal style and document defaults: Times New Roman 14 pt, black, Vietnamese proofing."""
    styles_el = doc.styles.element
    rpr_default = styles_el.find(qn("w:docDefaults")).find(qn("w:rPrDefault")).find(qn("w:rPr"))
    normal = doc.styles["Normal"]
    normal.font.name = FONT
    normal.font.size = Pt(BODY_PT)
    normal.font.color.rgb = RGBColor(0, 0, 0)
    for rpr in (rpr_default, normal.element.get_or_add_rPr()):
        set_rfonts(rpr)
        set_child_val(rpr, "w:sz", str(BODY_PT * 2))
        set_child_val(rpr, "w:szCs", str(BODY_PT * 2))
        lang = rpr.find(qn("w:lang"))
        if lang is None:
            lang = OxmlElement("w:lang")
            rpr.append(lang)
        lang.set(qn("w:val"), "vi-VN")
        lang.set(qn("w:eastAsia"), "vi-VN")
    normal.paragraph_format.space_after = Pt(0)


def mm_at_least(mm: float) -> Twips:
    """Word stores margins in whole twips; round up so 15 mm is not saved as 14.99 mm (below ND 30)."""
    return Twips(math.ceil(mm * 1440 / 25.4))


def set_page(doc) -> None:
    section = doc.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = mm_at_least(20), mm_at_least(20)
    section.left_margin, section.right_margin = mm_at_least(30), mm_at_least(15)
    section.header_distance = section.footer_distance = Mm(10)


def set_properties(doc) -> None:
    props = doc.core_properties
    props.title = "Phiếu xin lỗi và hẹn lại ngày trả kết quả (Mẫu 04)"
    props.author = props.last_modified_by = "tthc"
    props.comments = "Generated by packages/tthc_core/scripts/make_letter_template.py"
    props.created = props.modified = FIXED_TIME
    props.revision = 1


def build_header(doc) -> None:
    table = borderless_table(doc, 2, (HEADER_LEFT, HEADER_RIGHT))
    agency, nation = table.rows[0].cells
    # ND 30: the direct parent agency (none for a People's Committee), the issuing agency in bold under it.
    # `{%p ... %}` paragraphs vanish when rendered: no empty line when there is no parent.
    add_text(agency, "{%p if parent_agency %}", 13, first=True)
    add_text(agency, "{{ parent_agency|upper }}", 13)
    add_text(agency, "{%p endif %}", 13)
    add_text(agency, "{{ issuing_agency|upper }}", 13, bold=True)
    add_rule(agency, HEADER_LEFT, Cm(2.2))
    add_text(nation, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", 12, bold=True, first=True)
    add_text(nation, "Độc lập - Tự do - Hạnh phúc", 13, bold=True)
    add_rule(nation, HEADER_RIGHT, Cm(6.0))
    number, dated = table.rows[1].cells
    # The number carries its symbol ("01/PXL"; a draft's is "…/PXL"): the template adds nothing to it.
    add_text(number, "Số: {{ number }}", 13, before=6, first=True)
    add_text(dated, "{{ place }}, ngày {{ dd }} tháng {{ mm }} năm {{ yyyy }}", 14, italic=True, before=6,
             first=True)


BODY = (
    "Ngày {{ received_on }}, {{ agency_name }} tiếp nhận hồ sơ {{ procedure_name }} của "
    "{{ applicant_title }} {{ applicant_name }}.",
    "Mã hồ sơ: {{ dossier_id }}.",
    "Thời gian hẹn trả kết quả: {{ due_at }}.",
    "Tuy nhiên, đến nay {{ agency_name }} chưa trả kết quả giải quyết hồ sơ đúng thời hạn ghi trên "
    "Giấy tiếp nhận hồ sơ và hẹn trả kết quả. Lý do: {{ reason }}.",
    "{{ agency_name }} xin lỗi {{ applicant_title }} vì sự chậm trễ này và hẹn lại thời gian trả kết "
    "quả: {{ new_due_at }}.",
)


def build_body(doc) -> None:
    add_text(doc, "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ", 14, bold=True, before=24, after=6)
    add_text(doc, "Kính gửi: {{ applicant_title }} {{ applicant_name }}.", 14, before=6, after=12)
    for text in BODY:
        add_text(doc, text, BODY_PT, align=WD_ALIGN_PARAGRAPH.JUSTIFY, first_line=Cm(1.27), after=6)


def build_signature(doc) -> None:
    add_text(doc, "", BODY_PT, after=0)  # breathing space before the block, as in the printed form
    table = borderless_table(doc, 1, (SIGN_LEFT, SIGN_RIGHT))
    recipients, signer = table.rows[0].cells
    left = WD_ALIGN_PARAGRAPH.LEFT
    add_text(recipients, "Nơi nhận:", 12, bold=True, italic=True, align=left, first=True)
    for line in ("- Như trên;", "- {{ one_stop_unit_name }};", "- Lưu: VT."):
        add_text(recipients, line, 11, align=left)
    add_text(signer, "{{ signer_position|upper }}", 14, bold=True, first=True)
    add_text(signer, "(Ký, ghi rõ họ tên và đóng dấu)", 14, italic=True)
    # Word expects the body to end with a paragraph, not a table.
    add_text(doc, "", BODY_PT)


def build() -> bytes:
    doc = Document()
    set_defaults(doc)
    set_page(doc)
    set_properties(doc)
    build_header(doc)
    build_body(doc)
    build_signature(doc)
    buffer = io.BytesIO()
    doc.save(buffer)
    return stable_docx(buffer.getvalue())


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(build())
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
