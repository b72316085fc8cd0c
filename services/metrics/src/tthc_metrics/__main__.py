"""`python -m tthc_metrics`: serve the metrics service on METRICS_HTTP_HOST:METRICS_HTTP_PORT (8004)."""

from tthc_common.service import run_service

from .app import create_app
from .config import MetricsSettings


def main() -> None:
    settings = MetricsSettings()
    run_service(create_app(settings), settings)


if __name__ == "__main__":
    main()
