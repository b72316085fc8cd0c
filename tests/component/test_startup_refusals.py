"""`python -m tthc_deadline` and `python -m tthc_metrics` refuse to start on a configuration they cannot run with:
a bad setting, a calendar file that does not load, an unsupported database URL, a database or a broker that does
not answer. Each time: exactly one line on stderr, `<service>: refusing to start: ` then the variable to fix and
what is wrong with it, exit code 2, no traceback, and never a password of the URL (issue 12.5).

The commands run as real processes, all at once (each spends a second or more importing), with
`*_STARTUP_WAIT_S=0.5` so that waiting for an absent database or broker is short. One case per kind of mistake:
how each setting is read is pydantic's and the calendar file's own tests' business. Intake's and apology's own refusals are tested in
`test_intake.py` and `test_apology_startup.py`; apology's model-level setting error is here too, for its name.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.infra import free_ports

CLOSED_PORT = free_ports(1)[0]  # nothing listens there: a database or broker that does not answer
PASSWORD = "s3cret-pw"


@dataclass(frozen=True)
class Case:
    service: str
    env: dict[str, str]
    # what the line says after "<service>: refusing to start: "
    says: str


def cases(tmp: Path) -> dict[str, Case]:
    """The table (the files it names are written only when `tmp` exists)."""
    bad_calendar = tmp / "calendar.yaml"
    if tmp.is_dir():
        bad_calendar.write_text("office_hours: ['13:00-12:00']\n", encoding="utf-8")
    missing = tmp / "no-such-calendar.yaml"
    postgres = f"postgresql://tthc:{PASSWORD}@127.0.0.1:{CLOSED_PORT}/tthc"
    return {
        "deadline-port-abc": Case("deadline", {"DEADLINE_HTTP_PORT": "abc"},
                                  "DEADLINE_HTTP_PORT: Input should be a valid integer"),
        "deadline-batch-0": Case("deadline", {"DEADLINE_BATCH_MAX_RECORDS": "0"},
                                 "DEADLINE_BATCH_MAX_RECORDS: Input should be greater than 0"),
        "deadline-mysql": Case("deadline", {"DEADLINE_DATABASE_URL": "mysql://x"},
                               "DEADLINE_DATABASE_URL: 'mysql' is not supported: use sqlite:///var/x.db or "
                               "postgresql+psycopg://user:password@host:5432/name"),
        "deadline-calendar-missing": Case("deadline", {"DEADLINE_CALENDAR_FILE": str(missing)},
                                          f"DEADLINE_CALENDAR_FILE: {missing}: cannot read: No such file or directory"),
        "deadline-calendar-invalid": Case("deadline", {"DEADLINE_CALENDAR_FILE": str(bad_calendar)},
                                          f"DEADLINE_CALENDAR_FILE: {bad_calendar}, line 1: interval '13:00-12:00' "
                                          "ends before it starts"),
        "deadline-database-down": Case("deadline", {"DEADLINE_DATABASE_URL": postgres},
                                       "the database did not answer within 0.5 s (OperationalError): start it or "
                                       "fix DEADLINE_DATABASE_URL"),
        "deadline-kafka-down": Case("deadline", {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{CLOSED_PORT}"},
                                    f"Kafka at 127.0.0.1:{CLOSED_PORT} did not answer within 0.5 s "
                                    "(KafkaConnectionError): start it or fix KAFKA_BOOTSTRAP_SERVERS"),
        "metrics-mysql": Case("metrics", {"METRICS_DATABASE_URL": "mysql://x"},
                              "METRICS_DATABASE_URL: 'mysql' is not supported"),
        "metrics-calendar-invalid": Case("metrics", {"METRICS_CALENDAR_FILE": str(bad_calendar)},
                                         f"METRICS_CALENDAR_FILE: {bad_calendar}, line 1: interval '13:00-12:00' "
                                         "ends before it starts"),
        "metrics-database-down": Case("metrics", {"METRICS_DATABASE_URL": postgres},
                                      "the database did not answer within 0.5 s (OperationalError): start it or "
                                      "fix METRICS_DATABASE_URL"),
        "metrics-kafka-down": Case("metrics", {"METRICS_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{CLOSED_PORT}"},
                                   f"Kafka at 127.0.0.1:{CLOSED_PORT} did not answer within 0.5 s"),
        # A setting checked by the model, not by its field, used to read "APOLOGY: DATABASE_URL names ...".
        "apology-mysql": Case("apology", {"APOLOGY_DATABASE_URL": "mysql://x/y"},
                              "APOLOGY_DATABASE_URL: 'mysql' is not supported"),
    }


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


def base_env(tmp: Path, service: str) -> dict[str, str]:
    """The test process's environment without any TTHC setting, a throwaway SQLite database, a short wait."""
    prefixes = ("INTAKE_", "DEADLINE_", "APOLOGY_", "METRICS_", "KAFKA_", "TTHC_", "DATABASE_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    prefix = service.upper()
    env.update({f"{prefix}_DATABASE_URL": f"sqlite:///{tmp}/{service}.db", f"{prefix}_STARTUP_WAIT_S": "0.5",
                "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{CLOSED_PORT}"})
    return env


@dataclass(frozen=True)
class Started:
    cases: dict[str, Case]
    outcomes: dict[str, Outcome]


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    tmp = tmp_path_factory.mktemp("startup")
    table = cases(tmp)
    running = {}
    for name, case in table.items():
        workdir = tmp / name
        workdir.mkdir()
        running[name] = subprocess.Popen(
            [sys.executable, "-m", f"tthc_{case.service}"], cwd=workdir, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={**base_env(workdir, case.service), **case.env})
    try:
        yield Started(table, {name: Outcome(process.wait(timeout=120), *process.communicate())
                              for name, process in running.items()})
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()


# metrics passes `refuse_on=(CalendarFileError,)` to `service_main`: the line has the file, its line and the
# reason, but not the variable. The fix is in the report (services/metrics/src/tthc_metrics/__main__.py).
NOT_NAMED_YET = pytest.mark.xfail(strict=True, reason="metrics does not name METRICS_CALENDAR_FILE yet")


@pytest.mark.parametrize("name", list(cases(Path("/example"))))
def test_a_bad_configuration_is_refused_with_one_line_naming_what_to_fix(started: Started, name: str) -> None:
    case, outcome = started.cases[name], started.outcomes[name]

    assert outcome.code == 2, outcome
    assert outcome.stdout == ""
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1, outcome.stderr
    prefix = f"{case.service}: refusing to start: "
    assert lines[0].startswith(prefix), lines[0]
    assert lines[0].removeprefix(prefix).startswith(case.says), lines[0]
    assert PASSWORD not in outcome.stderr
