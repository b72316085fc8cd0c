"""Apology letter (form Mẫu 04 "Phiếu xin lỗi và hẹn lại ngày trả kết quả"): DOCX and template lint.

The PDF preview (LibreOffice) is I/O: `tthc_adapters.pdf`."""

from .check import check_template
from .context import PLACEHOLDERS, REQUIRED_PLACEHOLDERS, LetterContext, letter_context
from .fields import LetterFields
from .render import render_letter

__all__ = [
    "PLACEHOLDERS",
    "REQUIRED_PLACEHOLDERS",
    "LetterContext",
    "LetterFields",
    "check_template",
    "letter_context",
    "render_letter",
]
