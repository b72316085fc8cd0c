"""`python -m tthc_intake` serves intake; `python -m tthc_intake hash-key KEY` prints the digest to
put in `INTAKE_SOURCE_KEYS` (`source=sha256:<hex>`), so the key itself is never configured."""

from __future__ import annotations

import sys

from tthc_common.cli import service_main

from .auth import hash_key


def serve() -> int:
    from tthc_common.service import run_service

    from .app import create_app
    from .config import IntakeSettings

    settings = IntakeSettings()
    run_service(create_app(settings), settings)
    return 0


def main(argv: list[str] | None = None) -> int:
    return service_main("tthc_intake", argv, hash_key=hash_key, serve=serve)


if __name__ == "__main__":
    sys.exit(main())
