"""The four services as real processes for end-to-end tests (deploy/local/stack.py), with helpers."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.support.infra import free_ports

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "deadline", "apology", "metrics")


def _load_local(name: str) -> ModuleType:
    # deploy/local is not a package: load its modules by path, under names of their own.
    spec = importlib.util.spec_from_file_location(f"tthc_local_{name}", ROOT / "deploy" / "local" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


stack_module = _load_local("stack")
replay_check = _load_local("replay_check")  # the services next to `tthc replay` (also `make demo`'s check)


@contextmanager
def event_time_stack(*, kafka_bootstrap: str, topic_prefix: str, service_databases: dict[str, str], var_dir: Path,
                     officer_agencies: list[str], **options: Any) -> Iterator[Any]:
    """The four services started on `service_databases` and stopped afterwards. Their time follows the
    events only, as in a replay (no wall-clock ticks), so the figures do not depend on today's date; for the
    same reason intake takes simulated events ahead of today (a lead of ten years instead of 15 minutes)."""
    s = stack_module.Stack(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, var_dir=var_dir,
        database_urls=service_databases, ports=dict(zip(SERVICES, free_ports(len(SERVICES)))),
        officer_agencies=officer_agencies, ready_timeout_s=120,
        extra_env={"DEADLINE_PUBLISH_TICKS": "false", "INTAKE_MAX_EVENT_LEAD_S": str(10 * 366 * 86400)},
        **options,
    )
    s.start()
    try:
        yield s
    finally:
        s.stop()
