"""The compiled letter (`render_letter`) is byte for byte the reference (docxtpl + stable_docx)."""

from __future__ import annotations

import io
import unicodedata
import zipfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import docx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tthc_core.letter import (
    DRAFT_NUMBER,
    LetterFields,
    compiled_template,
    render_letter,
    render_letter_reference,
    stable_docx,
)

VN = timezone(timedelta(hours=7))
# Letters that make XML, Jinja and Unicode work: markup characters, quotes, Vietnamese in both forms.
VIETNAMESE = "ĂÂĐÊÔƠƯăâđêôơưÁÀẢÃẠẮẰẲẴẶẤẦẨẪẬÉÈẺẼẸẾỀỂỄỆÍÌỈĨỊÓÒỎÕỌỐỒỔỖỘỚỜỞỠỢÚÙỦŨỤỨỪỬỮỰÝỲỶỸỴáàảãạắằẳẵặấầẩẫậéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵ"
ALPHABET = VIETNAMESE + unicodedata.normalize("NFD", VIETNAMESE) + "abcXYZ 019&<>\"'{}%#/-.,;:()…“”‘’\t"


def text(min_size: int = 1) -> st.SearchStrategy[str]:
    return st.text(ALPHABET, min_size=min_size, max_size=40)


def instants() -> st.SearchStrategy[datetime]:
    return st.datetimes(datetime(2024, 1, 1), datetime(2027, 12, 31),
                        timezones=st.sampled_from([VN, timezone.utc]))


letters = st.builds(
    LetterFields,
    parent_agency=st.one_of(st.just(""), text()),
    issuing_agency=text(),
    agency_name=text(),
    agency_code=st.just("000.00.12.H10"),
    place=text(),
    number=st.one_of(st.just(DRAFT_NUMBER), st.integers(1, 999).map(lambda n: f"{n:02d}/PXL"), text()),
    issued_on=st.one_of(st.none(), st.dates(date(2024, 1, 1), date(2027, 12, 31))),
    applicant_kind=st.sampled_from(["citizen", "organization"]),
    applicant_name=text(),
    dossier_id=text(),
    procedure_name=text(),
    received_at=instants(),
    due_at=instants(),
    reason=text(min_size=0),
    new_due_at=instants(),
    one_stop_unit_name=text(),
    signer_position=st.one_of(text(), st.tuples(text(), text()).map("\n".join)),
)


def deployment_template(path: Path, title: str = "Phiếu xin lỗi của Sở") -> Path:
    """A template as a deployment writes one: placeholders in a page header, the body, a table and the
    footer, a paragraph that vanishes, its own styles and properties."""
    document = docx.Document()
    document.core_properties.title = title
    section = document.sections[0]
    section.header.paragraphs[0].text = "{{ issuing_agency|upper }} — {{ number }}"
    section.footer.paragraphs[0].text = "Mã hồ sơ {{ dossier_id }}"
    document.add_paragraph("{%p if parent_agency %}")
    document.add_paragraph("{{ parent_agency|upper }}")
    document.add_paragraph("{%p endif %}")
    document.add_paragraph("Số: {{ number }}. {{ place }}, ngày {{ dd }} tháng {{ mm }} năm {{ yyyy }}")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Kính gửi: {{ applicant_title }} {{ applicant_name }}"
    table.cell(0, 1).text = "{{ procedure_name }} ({{ received_on }})"
    table.cell(1, 0).text = "Hẹn: {{ due_at }}; hẹn lại: {{ new_due_at }}"
    table.cell(1, 1).text = "Lý do: {{ reason }}."
    document.add_paragraph("{{ agency_name }} — {{ one_stop_unit_name }} — {{ agency_code }}")
    document.add_paragraph("{{ signer_position|upper }}")
    document.save(path)
    return path


@pytest.fixture(scope="module")
def custom_template(tmp_path_factory) -> Path:
    return deployment_template(tmp_path_factory.mktemp("templates") / "000.00.12.H10.docx")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=letters)
def test_the_bundled_template_gives_the_reference_bytes(fields):
    assert compiled_template().body_spliced  # the fastest path is the one compared
    assert render_letter(fields) == render_letter_reference(fields)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(fields=letters)
def test_a_deployment_template_gives_the_reference_bytes(custom_template, fields):
    compiled = compiled_template(custom_template)
    assert compiled.fast and compiled.body_spliced  # headers, footers and body: all on the fast path
    assert render_letter(fields, custom_template) == render_letter_reference(fields, custom_template)


def sample() -> LetterFields:
    return LetterFields(
        parent_agency="UBND tỉnh Lạng Sơn", issuing_agency="Sở Tư pháp", agency_name="Sở Tư pháp tỉnh Lạng Sơn",
        agency_code="000.00.12.H10", place="Lạng Sơn", number="01/PXL", issued_on=date(2026, 3, 2),
        applicant_kind="organization", applicant_name='Công ty TNHH Hoa & Lá <Việt> "Số 1"',
        dossier_id="000.00.12.H10-260213-0001", procedure_name="Cấp Phiếu lý lịch tư pháp",
        received_at=datetime(2026, 2, 13, 10, tzinfo=VN), due_at=datetime(2026, 2, 27, 10, tzinfo=VN),
        reason="Cần xác minh", new_due_at=datetime(2026, 3, 4, 10, tzinfo=VN),
        one_stop_unit_name="Trung tâm Phục vụ hành chính công tỉnh Lạng Sơn", signer_position="Giám đốc",
    )


def test_placeholders_in_the_document_properties_take_the_reference_path(tmp_path):
    template = deployment_template(tmp_path / "titled.docx", title="Phiếu {{ number }}")
    assert not compiled_template(template).fast
    letter = render_letter(sample(), template)
    assert letter == render_letter_reference(sample(), template)
    assert docx.Document(io.BytesIO(letter)).core_properties.title == "Phiếu 01/PXL"


def test_a_changed_template_file_is_compiled_again(tmp_path):
    path = deployment_template(tmp_path / "t.docx")
    before = render_letter(sample(), path)
    document = docx.Document(path)
    document.add_paragraph("Trân trọng.")
    document.save(path)
    after = render_letter(sample(), path)
    assert after != before and after == render_letter_reference(sample(), path)
    assert "Trân trọng." in "\n".join(p.text for p in docx.Document(io.BytesIO(after)).paragraphs)


def test_the_same_letter_is_the_same_bytes_and_a_stable_package():
    first = render_letter(sample())
    assert render_letter(sample()) == first
    assert stable_docx(first) == first  # already what stable_docx writes (callers may still apply it)
    with zipfile.ZipFile(io.BytesIO(first)) as package:
        assert package.testzip() is None
        assert {i.date_time for i in package.infolist()} == {(1980, 1, 1, 0, 0, 0)}
