"""`python -m tthc_intake` serves intake (port 8001); `python -m tthc_intake hash-key KEY` prints the digest
to put in `INTAKE_SOURCE_KEYS` (`source=sha256:<hex>`), so the key itself is never configured.

A DVCQG catalogue (`INTAKE_DVCQG_CATALOGUE`) that does not load stops intake before anything starts, with its
line and reason (exit code 2: `create_app` raises StartupRefused)."""

from __future__ import annotations

import sys

from tthc_common.service import service_main


def main(argv: list[str] | None = None) -> int:
    from .app import create_app
    from .config import IntakeSettings

    return service_main("intake", argv, settings=IntakeSettings, create_app=create_app, hash_keys=True)


if __name__ == "__main__":
    sys.exit(main())
