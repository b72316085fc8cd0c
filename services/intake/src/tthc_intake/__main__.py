"""`python -m tthc_intake` serves intake; `python -m tthc_intake hash-key KEY` prints the digest to
put in `INTAKE_SOURCE_KEYS` (`source=sha256:<hex>`), so the key itself is never configured."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["hash-key"]:
        if len(args) != 2:
            print("usage: python -m tthc_intake hash-key KEY", file=sys.stderr)
            return 2
        from .auth import hash_key

        print(hash_key(args[1]))
        return 0
    if args:
        print("usage: python -m tthc_intake [hash-key KEY]", file=sys.stderr)
        return 2

    from tthc_common.service import run_service

    from .app import create_app
    from .config import IntakeSettings

    settings = IntakeSettings()
    run_service(create_app(settings), settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
