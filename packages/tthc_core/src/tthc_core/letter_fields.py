"""Moved to `tthc_core.letter` (fields.py). Kept only until services/apology imports it from there."""

from .letter.fields import DRAFT_REASON, LetterDefaults, LetterHeader, letter_for_draft

__all__ = ["DRAFT_REASON", "LetterDefaults", "LetterHeader", "letter_for_draft"]
