"""`python -m tthc_apology` serves the apology service (port 8003); `python -m tthc_apology hash-key KEY`
prints the digest to put in `APOLOGY_OFFICER_KEYS` (`agency_code=sha256:<hex>`), so the key itself is never
configured."""

from __future__ import annotations

import sys

from tthc_common.service import service_main


def main(argv: list[str] | None = None) -> int:
    from tthc_core.calendar_config import CalendarFileError

    from .app import create_app
    from .config import ApologySettings
    from .documents import TemplateProblems

    return service_main("apology", argv, settings=ApologySettings, create_app=create_app, hash_keys=True,
                        refuse_on={CalendarFileError: "calendar_file", TemplateProblems: "templates_dir"})


if __name__ == "__main__":
    sys.exit(main())
