"""`python -m tthc_apology` serves the apology service (port 8003);
`python -m tthc_apology hash-key KEY` prints the digest to put in `APOLOGY_OFFICER_KEYS`
(`agency_code=<digest>`), so the key itself is never configured."""

from __future__ import annotations

import sys

from tthc_common.cli import service_main

from .officer_keys import hash_key


def serve() -> int:
    from pydantic import ValidationError

    from tthc_common.service import run_service
    from tthc_core.calendar_config import CalendarFileError

    from .app import create_app
    from .config import ApologySettings
    from .documents import TemplateProblems

    try:
        settings = ApologySettings()
        app = create_app(settings)
    except ValidationError as exc:
        # without the input values: a misconfigured key list may hold plain keys
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors(include_url=False, include_input=False))
        print(f"apology: refusing to start, bad settings: {problems}", file=sys.stderr)
        return 2
    except CalendarFileError as exc:
        print(f"apology: refusing to start, calendar refused: {exc}", file=sys.stderr)
        return 2
    except TemplateProblems as exc:
        print(f"apology: {exc}", file=sys.stderr)
        return 2
    run_service(app, settings)
    return 0


def main(argv: list[str] | None = None) -> int:
    return service_main("tthc_apology", argv, hash_key=hash_key, serve=serve)


if __name__ == "__main__":
    sys.exit(main())
