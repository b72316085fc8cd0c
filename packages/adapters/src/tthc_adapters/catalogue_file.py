"""Reading the DVCQG procedure catalogue (`spec/dvcqg.md`); the parsing is the contracts package's."""

from __future__ import annotations

from pathlib import Path

from tthc_contracts.dvcqg import Catalogue, CatalogueError, parse_catalogue

from .config_files import load_config

__all__ = ["CatalogueError", "load_catalogue"]


def load_catalogue(path: str | Path) -> Catalogue:
    """The catalogue of `path`; raises CatalogueError with the line and the reason."""
    return load_config(path, parse_catalogue, CatalogueError)
