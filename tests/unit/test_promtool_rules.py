"""Prometheus rules checked and unit-tested by promtool (Debian package `prometheus`, `make tools`).

- `promtool check rules` on every deploy/prometheus/rules/*.yml;
- `promtool test rules` on every deploy/prometheus/tests/*.test.yml;
- `promtool check config` on deploy/prometheus/prometheus.yml, with its rule_files pointed at the repo;
- every rules file is exercised by at least one test file, and every rule it defines appears in a test.

A failure shows promtool's own output. Without promtool the promtool tests fail when CI is set and are
skipped elsewhere.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.infra import unavailable

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    path = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if path:
        return path
    unavailable("promtool is not installed (`make tools`, or apt-get install prometheus)")


def run(*args: str | Path, cwd: Path | None = None) -> str:
    """promtool's report; a failure shows it whole."""
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120,
                            check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited with {result.returncode}:\n{result.stdout}{result.stderr}",
                    pytrace=False)
    return result.stdout + result.stderr


def _id(path: Path) -> str:
    return path.name


def test_there_are_rules_and_tests() -> None:
    assert RULE_FILES and TEST_FILES


@pytest.mark.parametrize("rules", RULE_FILES, ids=_id)
def test_promtool_check_rules(promtool: str, rules: Path) -> None:
    written = sum(len(group["rules"]) for group in yaml.safe_load(rules.read_text(encoding="utf-8"))["groups"])
    report = run(promtool, "check", "rules", rules)
    assert f"SUCCESS: {written} rules found" in report, report  # promtool read every rule of the file


@pytest.mark.parametrize("tests", TEST_FILES, ids=_id)
def test_promtool_test_rules(promtool: str, tests: Path) -> None:
    # rule_files in a test file are relative to the test file's directory
    report = run(promtool, "test", "rules", tests.name, cwd=tests.parent)
    assert "SUCCESS" in report and "FAILED" not in report, report


def test_promtool_check_config(promtool: str, tmp_path: Path) -> None:
    """prometheus.yml as docker-compose.yml mounts it (rules at /etc/prometheus/rules), rules from the repo."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"], "docker-compose.yml mounts rules/ there"
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules" / "*.yml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    report = run(promtool, "check", "config", path)
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in report, report


def _tested_rule_files() -> set[Path]:
    tested = set()
    for test in TEST_FILES:
        for name in yaml.safe_load(test.read_text(encoding="utf-8")).get("rule_files", []):
            tested.add((test.parent / name).resolve())
    return tested


@pytest.mark.parametrize("rules", RULE_FILES, ids=_id)
def test_every_rules_file_has_a_test_file(rules: Path) -> None:
    assert rules.resolve() in _tested_rule_files(), f"no deploy/prometheus/tests/*.test.yml loads {rules.name}"


@pytest.mark.parametrize("rules", RULE_FILES, ids=_id)
def test_every_rule_appears_in_a_test(rules: Path) -> None:
    """Each alert is in an alert_rule_test; each recording rule is the expr of a promql_expr_test, except the
    per-figure ones (tthc:<figure>:<shape>, all from one template) of which a sample is."""
    exprs: list[str] = []
    alerts: set[str] = set()
    for test in TEST_FILES:
        for case in yaml.safe_load(test.read_text(encoding="utf-8"))["tests"]:
            exprs += [t["expr"] for t in case.get("promql_expr_test", [])]
            alerts |= {t["alertname"] for t in case.get("alert_rule_test", [])}
    tested = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", " ".join(exprs)))
    shapes_tested = {name.rsplit(":", 1)[1] for name in tested if re.fullmatch(r"tthc:[a-z0-9_]+:(province|by_agency|by_field)", name)}
    missing = []
    for group in yaml.safe_load(rules.read_text(encoding="utf-8"))["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                if rule["alert"] not in alerts:
                    missing.append(rule["alert"])
            elif re.fullmatch(r"tthc:[a-z0-9_]+:(province|by_agency|by_field)", rule["record"]):
                if rule["record"].rsplit(":", 1)[1] not in shapes_tested:
                    missing.append(rule["record"])
            elif rule["record"] not in tested:
                missing.append(rule["record"])
    assert not missing, f"rules of {rules.name} that no test in deploy/prometheus/tests exercises: {missing}"
