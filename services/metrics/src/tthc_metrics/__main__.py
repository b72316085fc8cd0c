"""`python -m tthc_metrics`: serve the metrics service on METRICS_HTTP_HOST:METRICS_HTTP_PORT (8004)."""

from __future__ import annotations

import sys

from tthc_common.service import service_main


def main(argv: list[str] | None = None) -> int:
    from tthc_core.calendar_config import CalendarFileError

    from .app import create_app
    from .config import MetricsSettings

    return service_main("metrics", argv, settings=MetricsSettings, create_app=create_app,
                        refuse_on={CalendarFileError: "calendar_file"})


if __name__ == "__main__":
    sys.exit(main())
