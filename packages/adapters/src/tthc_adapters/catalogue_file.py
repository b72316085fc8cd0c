"""Reading the DVCQG procedure catalogue (`spec/dvcqg.md`); the parsing is the contracts package's."""

from __future__ import annotations

from pathlib import Path

from tthc_contracts.dvcqg import Catalogue, CatalogueError, parse_catalogue

__all__ = ["CatalogueError", "load_catalogue"]


def load_catalogue(path: str | Path) -> Catalogue:
    """The catalogue of `path`; raises CatalogueError with the line and the reason."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(None, f"cannot read: {exc.strerror}", str(p)) from None
    except UnicodeDecodeError:
        raise CatalogueError(None, "not UTF-8 text", str(p)) from None
    return parse_catalogue(text, str(p))
