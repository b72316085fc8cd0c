"""Apology letter (form Mẫu 04 "Phiếu xin lỗi và hẹn lại ngày trả kết quả"): DOCX, template lint, PDF."""

from .check import check_template
from .context import PLACEHOLDERS, REQUIRED_PLACEHOLDERS, LetterContext, letter_context
from .fields import LetterFields
from .pdf import PdfConversionError, docx_to_pdf
from .render import render_letter

__all__ = [
    "PLACEHOLDERS",
    "REQUIRED_PLACEHOLDERS",
    "LetterContext",
    "LetterFields",
    "PdfConversionError",
    "check_template",
    "docx_to_pdf",
    "letter_context",
    "render_letter",
]
