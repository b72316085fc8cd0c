"""The four services as real processes for end-to-end tests (deploy/local/stack.py), with helpers."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "deadline", "apology", "metrics")


def _load_stack_module() -> ModuleType:
    # deploy/local is not a package: load stack.py by path, under a name of its own.
    spec = importlib.util.spec_from_file_location("tthc_local_stack", ROOT / "deploy" / "local" / "stack.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


stack_module = _load_stack_module()


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def libpq_url(url: str) -> str:
    """postgresql+psycopg://… → postgresql://… (what psycopg.connect takes)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+", 1)[0]))


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
