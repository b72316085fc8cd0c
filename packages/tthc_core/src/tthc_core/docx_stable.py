"""Moved to `tthc_core.letter` (docx_package.py). Kept only until services/apology imports it from there."""

from .letter.docx_package import stable_docx

__all__ = ["stable_docx"]
